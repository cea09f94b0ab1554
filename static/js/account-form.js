// Shows only the chosen provider's fields, and fills Host/Port/TLS and the sending limits
// from a provider preset.
// Without JS every field shows and the server ignores the other provider's values.
(function () {
  "use strict";
  const form = document.querySelector(".account-form");
  if (!form) return;

  function currentProvider() {
    const checked = form.querySelector('input[name="provider"]:checked');
    return checked ? checked.value : "internal";
  }

  function showProvider() {
    const provider = currentProvider();
    form.dataset.provider = provider;
    form.querySelectorAll("[data-provider-section]").forEach(function (section) {
      const on = section.dataset.providerSection === provider;
      section.hidden = !on;
      // Hidden inputs are not sent, so the other provider's stale values never post.
      section.querySelectorAll("input, select").forEach(function (el) { el.disabled = !on; });
    });
    form.querySelectorAll(".provider-help").forEach(function (help) {
      help.hidden = help.dataset.for !== provider;
    });
  }

  // The presets come from the server (forms.PRESETS), so they are written down once.
  const presetData = document.getElementById("smtp-presets");
  const presets = presetData ? JSON.parse(presetData.textContent) : {};
  const preset = form.querySelector('select[name="preset"]');
  if (preset) {
    preset.addEventListener("change", function () {
      const chosen = presets[preset.value];
      if (!chosen) return;
      form.querySelector('input[name="host"]').value = chosen.host;
      Object.keys(chosen.limits).forEach(function (name) {
        const input = form.querySelector('input[name="' + name + '"]');
        if (input && !input.value) input.value = chosen.limits[name];  // typed limits win
      });
      form.querySelector('input[name="port"]').value = "587";
      form.querySelector('select[name="security"]').value = "starttls";
    });
  }

  // A host typed by hand is no longer the preset's: the choice follows the host.
  const hostInput = form.querySelector('input[name="host"]');
  if (preset && hostInput) {
    hostInput.addEventListener("input", function () {
      const match = Object.keys(presets).find(function (key) {
        return presets[key].host === hostInput.value.trim().toLowerCase();
      });
      preset.value = match || "";
    });
  }

  form.querySelectorAll('input[name="provider"]').forEach(function (radio) {
    radio.addEventListener("change", showProvider);
  });
  showProvider();
})();
