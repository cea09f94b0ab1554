// Sign-in on the account form: hides the password for an OAuth sign-in, shows the
// app-password advice for Gmail and Yahoo, and lets the Gmail/Outlook presets suggest OAuth.
// Without JS the password field shows and the server ignores it for an OAuth sign-in.
(function () {
  "use strict";
  const form = document.querySelector(".account-form");
  if (!form) return;
  const method = form.querySelector('select[name="auth_method"]');
  const host = form.querySelector('input[name="host"]');
  const preset = form.querySelector('select[name="preset"]');
  const data = document.getElementById("smtp-preset-sign-in");
  const suggested = data ? JSON.parse(data.textContent) : {};
  const appPasswordHosts = { gmail: /(^|\.)gmail\.com$/i, yahoo: /(^|\.)yahoo\.com$/i };

  function update() {
    const oauth = method && method.value !== "password";
    const password = form.querySelector('[data-field="password"]');
    if (password) {
      password.hidden = oauth;
      password.querySelectorAll("input").forEach(function (el) { el.disabled = oauth; });
    }
    form.querySelectorAll("[data-app-password-for]").forEach(function (note) {
      const pattern = appPasswordHosts[note.dataset.appPasswordFor];
      note.hidden = oauth || !(host && pattern.test(host.value.trim()));
    });
  }

  if (preset && method) {
    preset.addEventListener("change", function () {
      if (suggested[preset.value]) method.value = suggested[preset.value];
      update();
    });
  }
  if (method) method.addEventListener("change", update);
  if (host) host.addEventListener("input", update);
  if (preset) preset.addEventListener("change", update);
  update();
})();
