// What every admin page shares: calling the admin API with the page session (the HttpOnly
// cookie goes along; this script never sees it) and declarative actions:
//   <form data-api="PUT /api/v1/admin/..." data-then="reload">  fields -> JSON body
//   <button data-api="POST /api/v1/admin/..." data-body='{"a":1}' data-confirm="Sure?">
// Field types (data-type): int, json, bool (checkbox), list (comma separated), money (decimal
// text -> integer minor units); name="a.b" nests. Empty optional fields are left out.
// data-then: "reload" | "/path" (navigate) | "show:<element id>" (the JSON answer shown there).
(function () {
  "use strict";
  const texts = (document.getElementById("admin-texts") || {dataset: {}}).dataset;

  function ApiError(status, problem) {
    const error = new Error((problem && problem.detail) || texts.error || String(status));
    error.status = status;
    error.code = problem && problem.code;
    error.detail = problem && problem.detail;
    error.problem = problem;
    return error;
  }

  async function call(method, path, body) {
    const headers = {"Accept": "application/json"};
    const init = {method: method, headers: headers, credentials: "same-origin"};
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    const type = response.headers.get("content-type") || "";
    const payload = response.status === 204 ? null
      : type.includes("json") ? await response.json() : await response.text();
    if (!response.ok) {
      if (response.status === 401) {
        window.location.assign("/admin/login?next=" + encodeURIComponent(location.pathname + location.search));
      }
      throw ApiError(response.status, typeof payload === "object" ? payload : {detail: payload});
    }
    return payload;
  }

  function money(text) {
    const cleaned = text.trim().replace(/\s/g, "");
    // "1.234,56" (German), "1,234.56" and "12.5" all mean what a person means.
    const lastComma = cleaned.lastIndexOf(",");
    const lastDot = cleaned.lastIndexOf(".");
    const decimalMark = lastComma > lastDot ? "," : ".";
    const normal = cleaned.split(decimalMark === "," ? "." : ",").join("").replace(decimalMark, ".");
    if (!/^-?\d+(\.\d{1,2})?$/.test(normal)) { throw new Error(text); }
    const [whole, fraction = ""] = normal.split(".");
    const sign = whole.startsWith("-") ? -1 : 1;
    return sign * (Math.abs(parseInt(whole, 10)) * 100 + parseInt((fraction + "00").slice(0, 2), 10));
  }

  function value(field) {
    const type = field.dataset.type || "text";
    if (type === "bool") { return field.checked; }
    const raw = field.value;
    if (raw === "" && type !== "text") { return undefined; }
    if (raw === "" && !field.required && field.dataset.keepEmpty === undefined) { return undefined; }
    switch (type) {
      case "int": return parseInt(raw, 10);
      case "json": return JSON.parse(raw);
      case "list": return raw.split(",").map(function (item) { return item.trim(); }).filter(Boolean);
      case "money": return money(raw);
      default: return raw;
    }
  }

  function put(target, name, item) {
    const parts = name.split(".");
    let node = target;
    parts.slice(0, -1).forEach(function (part) {
      if (typeof node[part] !== "object" || node[part] === null) { node[part] = {}; }
      node = node[part];
    });
    node[parts[parts.length - 1]] = item;
  }

  function formBody(form) {
    const body = {};
    Array.from(form.elements).forEach(function (field) {
      if (!field.name || field.disabled || field.type === "submit") { return; }
      if (field.type === "radio" && !field.checked) { return; }
      const item = value(field);
      if (item !== undefined) { put(body, field.name, item); }
    });
    return body;
  }

  function errorSlot(container) {
    let slot = container.querySelector(".form-error");
    if (!slot) {
      slot = document.createElement("p");
      slot.className = "form-error";
      slot.setAttribute("role", "alert");
      container.append(slot);
    }
    return slot;
  }

  function showError(container, error) {
    const slot = errorSlot(container);
    slot.textContent = error.status === 403 && !error.detail ? texts.notAllowed : error.message;
    slot.hidden = false;
  }

  function after(element, answer) {
    const then = element.dataset.then || "reload";
    if (then === "reload") { window.location.reload(); return; }
    if (then.startsWith("show:")) {
      const target = document.getElementById(then.slice(5));
      target.textContent = typeof answer === "string" ? answer : JSON.stringify(answer, null, 2);
      target.hidden = false;
      return;
    }
    window.location.assign(then);
  }

  function split(spec) {
    const space = spec.indexOf(" ");
    return [spec.slice(0, space), spec.slice(space + 1)];
  }

  async function act(element, container, body, busy) {
    if (element.dataset.confirm && !window.confirm(element.dataset.confirm)) { return; }
    const [method, path] = split(element.dataset.api);
    busy.disabled = true;
    const slot = container.querySelector(".form-error");
    if (slot) { slot.hidden = true; }
    try {
      const answer = await call(method, path, body);
      element.dispatchEvent(new CustomEvent("admin:done", {detail: answer, bubbles: true}));
      after(element, answer);
    } catch (error) {
      showError(container, error);
    } finally {
      busy.disabled = false;
    }
  }

  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.api) { return; }
    event.preventDefault();
    let body;
    try {
      body = formBody(form);
    } catch (error) {
      showError(form, new Error(texts.error + " (" + error.message + ")"));
      return;
    }
    const submit = form.querySelector("[type=submit]") || form;
    act(form, form, body, submit);
  });

  document.addEventListener("click", function (event) {
    const button = event.target.closest("button[data-api]");
    if (!button || button.form && button.form.dataset.api && button.type === "submit") { return; }
    event.preventDefault();
    const body = button.dataset.body ? JSON.parse(button.dataset.body) : undefined;
    act(button, button.closest("[data-error-scope]") || button.parentElement, body, button);
  });

  window.AdminApi = {call: call, formBody: formBody, money: money, showError: showError};
})();
