// The webhooks pages.
//   <form data-webhook="POST /api/v1/admin/webhooks">: url, description, program_id and the
//     checked "events" boxes as a JSON list (admin.js's forms know no checkbox lists).
//   <button data-issue="POST .../secret" data-issue-for="url" data-confirm="...">: a new secret.
// An answer with a signing secret (a new endpoint, a rotation) shows it in #issued with a copy
// button instead of reloading; it is kept nowhere else, and the page reloads when staff say they
// saved it. Other answers reload the page.
(function () {
  "use strict";
  const api = window.AdminApi;
  const panel = document.getElementById("issued");
  const secretSlot = document.getElementById("issued-secret");
  const copied = document.getElementById("issued-copied");

  function split(spec) {
    const space = spec.indexOf(" ");
    return [spec.slice(0, space), spec.slice(space + 1)];
  }

  function showSecret(secret, target) {
    document.getElementById("issued-for").textContent = target || "";
    secretSlot.textContent = secret;
    copied.hidden = true;
    // Nothing else may be used until the secret is saved: the page reloads after.
    document.querySelectorAll("main button").forEach(function (button) {
      if (!panel.contains(button)) { button.disabled = true; }
    });
    panel.hidden = false;
    panel.scrollIntoView({block: "start"});
    document.getElementById("issued-copy").focus();
  }

  if (panel) {
    document.getElementById("issued-copy").addEventListener("click", async function () {
      const range = document.createRange();
      range.selectNodeContents(secretSlot);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      try {
        await navigator.clipboard.writeText(secretSlot.textContent);
        copied.textContent = panel.dataset.copied;
      } catch (error) {
        copied.textContent = panel.dataset.copyFailed;
      }
      copied.hidden = false;
    });
    document.getElementById("issued-done").addEventListener("click", function () {
      secretSlot.textContent = "";
      window.location.reload();
    });
  }

  function endpointBody(form) {
    const body = {};
    const url = form.elements.namedItem("url");
    if (url) { body.url = url.value.trim(); }
    const description = form.elements.namedItem("description");
    if (description) { body.description = description.value.trim(); }
    const program = form.elements.namedItem("program_id");
    if (program && program.value) { body.program_id = parseInt(program.value, 10); }
    body.events = Array.from(form.querySelectorAll("input[name=events]:checked"))
      .map(function (box) { return box.value; });
    return body;
  }

  document.addEventListener("submit", async function (event) {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.webhook) { return; }
    event.preventDefault();
    const slot = form.querySelector(".form-error");
    if (slot) { slot.hidden = true; }
    const body = endpointBody(form);
    if (body.events.length === 0) {
      api.showError(form, new Error(form.dataset.chooseEvents));
      return;
    }
    const submit = form.querySelector("[type=submit]");
    submit.disabled = true;
    const [method, path] = split(form.dataset.webhook);
    try {
      const answer = await api.call(method, path, body);
      if (answer && answer.secret && panel) {
        form.reset();
        showSecret(answer.secret, answer.endpoint.url);
        return;
      }
      window.location.reload();
    } catch (error) {
      api.showError(form, error);
      submit.disabled = false;
    }
  });

  document.addEventListener("click", async function (event) {
    const button = event.target.closest("button[data-issue]");
    if (!button) { return; }
    event.preventDefault();
    if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) { return; }
    const scope = button.closest("[data-error-scope]") || button.parentElement;
    const [method, path] = split(button.dataset.issue);
    button.disabled = true;
    try {
      const answer = await api.call(method, path);
      showSecret(answer.secret, button.dataset.issueFor);
    } catch (error) {
      api.showError(scope, error);
      button.disabled = false;
    }
  });
})();
