// The tills page: forms whose answer holds a secret shown only once (a terminal's new API key,
// a vendor key the platform drew). <form data-issue="POST /api/v1/admin/..."
// data-issue-title="..."> sends its fields like admin.js's data-api forms, then shows the
// secret in #issued with a copy button instead of reloading; the secret is kept nowhere else.
// An answer without a secret (a vendor's own secret entered) just reloads the page.
(function () {
  "use strict";
  const panel = document.getElementById("issued");
  if (!panel) { return; }
  const secretSlot = document.getElementById("issued-secret");
  const copied = document.getElementById("issued-copied");
  const older = document.getElementById("issued-older");
  const texts = panel.dataset;
  const when = new Intl.DateTimeFormat(texts.lang === "en" ? "en-GB" : "de-DE",
    {dateStyle: "medium", timeStyle: "short", timeZone: "Europe/Berlin"});

  function showIssued(title, secret, olderUntil, createdAt) {
    document.getElementById("issued-title").textContent = title;
    secretSlot.textContent = secret;
    copied.hidden = true;
    older.hidden = olderUntil === undefined || olderUntil === null;
    if (!older.hidden) {
      const until = new Date(olderUntil);
      older.textContent = until <= new Date(createdAt) ? texts.olderNow
        : texts.older + " " + when.format(until) + ".";
    }
    // Nothing else on the page may be used until the key is saved: the page reloads after.
    document.querySelectorAll("form[data-issue] button, form[data-api] button, button[data-api]")
      .forEach(function (button) { button.disabled = true; });
    panel.hidden = false;
    panel.scrollIntoView({block: "start"});
    document.getElementById("issued-copy").focus();
  }

  function selectSecret() {
    const range = document.createRange();
    range.selectNodeContents(secretSlot);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  document.getElementById("issued-copy").addEventListener("click", async function () {
    selectSecret();
    try {
      await navigator.clipboard.writeText(secretSlot.textContent);
      copied.textContent = texts.copied;
    } catch (error) {
      copied.textContent = texts.copyFailed;
    }
    copied.hidden = false;
  });

  document.getElementById("issued-done").addEventListener("click", function () {
    secretSlot.textContent = "";
    window.location.reload();
  });

  document.addEventListener("submit", async function (event) {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.issue) { return; }
    event.preventDefault();
    const spec = form.dataset.issue;
    const space = spec.indexOf(" ");
    const submit = form.querySelector("[type=submit]");
    const slot = form.querySelector(".form-error");
    if (slot) { slot.hidden = true; }
    submit.disabled = true;
    try {
      const answer = await window.AdminApi.call(spec.slice(0, space), spec.slice(space + 1),
                                                window.AdminApi.formBody(form));
      const secret = answer.api_key || answer.secret;
      if (!secret) { window.location.reload(); return; }
      form.reset();
      showIssued(form.dataset.issueTitle, secret, answer.older_keys_expire_at,
                 answer.created_at || (answer.connection && answer.connection.updated_at));
    } catch (error) {
      window.AdminApi.showError(form, error);
      submit.disabled = false;
    }
  });
})();
