// The Test pop-up: Send a test email, watch its delivery, paste the code, Confirm.
// Plain JS over the same URLs as the no-JS pages; the server answers JSON when asked to.
(function () {
  "use strict";

  const dialog = document.querySelector("[data-test-dialog]");
  // Without <dialog> support the Test buttons stay links to the no-JS pages.
  if (!dialog || typeof dialog.showModal !== "function") return;

  const sendForm = dialog.querySelector("[data-send-form]");
  const confirmForm = dialog.querySelector("[data-confirm-form]");
  const emailInput = sendForm.elements.email;
  const codeInput = confirmForm.elements.code;
  const defaultEmail = emailInput.value;
  const status = dialog.querySelector("[data-status]");
  const POLL_MS = 1000;
  const POLL_LIMIT = 90;
  const BADGES = {
    queued: ["Queued", "badge-muted", "message"],
    sent: ["Sent", "badge-ok", "message message-success"],
    failed: ["Failed", "badge-error", "message message-error"],
    confirmed: ["Confirmed", "badge-ok", "message message-success"],
    burned: ["Code burned", "badge-error", "message message-error"],
    expired: ["Code expired", "badge-warn", "message message-warning"],
    superseded: ["Replaced", "badge-muted", "message message-warning"],
  };

  let account = null; // {id, name, testUrl, confirmUrl} of the open pop-up
  let pollTimer = null;
  let shownTest = null; // the test the status box shows, kept when a new Send is refused

  function setError(element, text) {
    element.textContent = text || "";
    element.hidden = !text;
  }

  function renderTest(test, override) {
    shownTest = test;
    if (!test) {
      status.hidden = true;
      confirmForm.hidden = true;
      return;
    }
    const [label, badgeClass, boxClass] = BADGES[test.state] || [test.state, "badge-muted", "message"];
    const badge = status.querySelector("[data-status-badge]");
    badge.textContent = label;
    badge.className = "badge " + badgeClass;
    status.className = boxClass + " test-status";
    status.querySelector("[data-status-text]").textContent = override || test.message;
    setError(status.querySelector("[data-status-hint]"), test.hint ? "Hint: " + test.hint : "");
    status.hidden = false;
    confirmForm.hidden = !test.awaiting_code;
  }

  async function call(url, form) {
    const response = await fetch(url, {
      method: form ? "POST" : "GET",
      body: form ? new FormData(form) : undefined,
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    });
    const type = response.headers.get("Content-Type") || "";
    if (!type.includes("application/json")) {
      throw new Error(
        response.redirected || response.status === 403
          ? "Your session has ended or you may not test this account. Reload the page and log in again."
          : "The server could not answer (HTTP " + response.status + "). Try again in a moment."
      );
    }
    return response.json();
  }

  function stopPolling() {
    clearTimeout(pollTimer);
    pollTimer = null;
  }

  function pollWhileQueued(target, data, round) {
    stopPolling();
    if (!data.test || data.test.state !== "queued") return;
    if (round >= POLL_LIMIT) {
      renderTest(data.test, "Still queued after " + POLL_LIMIT + " seconds: the mail workers may be " +
        "down. Check that a Celery worker is running (celery -A crm worker).");
      return;
    }
    pollTimer = setTimeout(async function () {
      if (account !== target) return;
      try {
        const next = await call(target.testUrl);
        if (account !== target) return;
        renderTest(next.test);
        pollWhileQueued(target, next, round + 1);
      } catch (error) {
        pollWhileQueued(target, data, round + 1);
      }
    }, POLL_MS);
  }

  async function loadState(target) {
    try {
      const data = await call(target.testUrl);
      if (account !== target || !data.test) return;
      if (["queued", "sent"].includes(data.test.state)) {
        renderTest(data.test); // still going: carry on where the admin left off
        pollWhileQueued(target, data, 0);
      } else {
        renderTest(data.test, "Last test (" + data.test.requested_display + "): " + data.test.message);
      }
    } catch (error) {
      // The pop-up still works without the previous state.
    }
  }

  function open(button) {
    stopPolling();
    account = {
      id: button.dataset.accountId,
      name: button.dataset.accountName,
      testUrl: button.dataset.testUrl,
      confirmUrl: button.dataset.confirmUrl,
    };
    dialog.querySelector("[data-account-name]").textContent = account.name;
    sendForm.action = account.testUrl;
    confirmForm.action = account.confirmUrl;
    emailInput.value = emailInput.value || defaultEmail;
    codeInput.value = "";
    setError(dialog.querySelector("[data-send-error]"), "");
    setError(dialog.querySelector("[data-confirm-error]"), "");
    renderTest(null);
    dialog.showModal();
    emailInput.focus();
    loadState(account);
  }

  async function onSend(event) {
    event.preventDefault();
    const target = account;
    const button = sendForm.querySelector("button[type=submit]");
    const error = dialog.querySelector("[data-send-error]");
    setError(error, "");
    setError(dialog.querySelector("[data-confirm-error]"), "");
    codeInput.value = "";
    const previous = shownTest;
    renderTest({ state: "queued", message: "Sending the test email to " + emailInput.value + "…" });
    button.disabled = true;
    try {
      const data = await call(target.testUrl, sendForm);
      if (account !== target) return;
      if (data.ok) {
        renderTest(data.test);
        pollWhileQueued(target, data, 0);
        if (data.test && data.test.awaiting_code) codeInput.focus();
      } else {
        renderTest(previous);
        setError(error, data.error);
        emailInput.focus();
      }
    } catch (failure) {
      renderTest(previous);
      setError(error, failure.message);
    } finally {
      button.disabled = false;
    }
  }

  function markVerified(data) {
    const row = document.querySelector('[data-account-row="' + account.id + '"]');
    const cell = row && row.querySelector("[data-verified-cell]");
    if (cell) {
      const badge = document.createElement("span");
      badge.className = "verified";
      badge.textContent = "Verified";
      const state = row.querySelector("[data-state]");
      if (state && state.dataset.state === "needs_test") {  // its one state is now Ready
        const ready = document.createElement("span");
        ready.className = "badge badge-ok";
        ready.textContent = "Ready";
        state.dataset.state = "ready";
        state.replaceChildren(ready);
      }
      const when = document.createElement("div");
      when.className = "muted small nowrap";
      when.textContent = data.account.verified_display;
      cell.replaceChildren(badge, when);
      row.querySelectorAll(".row-error").forEach((element) => element.remove());
    }
    flash(data.message);
  }

  function flash(text) {
    let list = document.querySelector(".messages");
    if (!list) {
      list = document.createElement("ul");
      list.className = "messages";
      list.setAttribute("role", "status");
      document.querySelector(".content").prepend(list);
    }
    const item = document.createElement("li");
    item.className = "message message-success";
    item.textContent = text;
    list.replaceChildren(item);
  }

  async function onConfirm(event) {
    event.preventDefault();
    const target = account;
    const button = confirmForm.querySelector("button[type=submit]");
    const error = dialog.querySelector("[data-confirm-error]");
    setError(error, "");
    button.disabled = true;
    try {
      const data = await call(target.confirmUrl, confirmForm);
      if (account !== target) return;
      if (data.ok) {
        markVerified(data);
        dialog.close();
      } else if (data.tries_left > 0) {
        setError(error, data.error);
        codeInput.select();
      } else {
        renderTest(data.test || { state: "failed", message: data.error }, data.error);
        confirmForm.hidden = true;
        emailInput.focus();
      }
    } catch (failure) {
      setError(error, failure.message);
    } finally {
      button.disabled = false;
    }
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest("[data-test-button]");
    if (!button) return;
    event.preventDefault();
    open(button);
  });
  dialog.querySelectorAll("[data-close]").forEach(function (button) {
    button.addEventListener("click", function () { dialog.close(); });
  });
  dialog.addEventListener("close", function () {
    stopPolling();
    account = null;
  });
  sendForm.addEventListener("submit", onSend);
  confirmForm.addEventListener("submit", onConfirm);
})();
