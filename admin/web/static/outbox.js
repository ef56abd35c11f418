// The mail outbox page: sign in as staff, list the merchant's mail, read one.
// The staff token lives in sessionStorage (this tab only) and goes in the Authorization header.
(function () {
  "use strict";
  const api = "/api/v1/admin";
  const texts = document.getElementById("texts").dataset;
  const $ = function (id) { return document.getElementById(id); };
  const lang = document.documentElement.lang === "en" ? "en-GB" : "de-DE";
  const when = new Intl.DateTimeFormat(lang, {dateStyle: "short", timeStyle: "medium"});

  function token() { return sessionStorage.getItem("loyalty-staff-token"); }

  async function call(method, path, body) {
    const headers = {"Accept": "application/json"};
    if (token()) { headers.Authorization = "Bearer " + token(); }
    if (body !== undefined) { headers["Content-Type"] = "application/json"; }
    const response = await fetch(api + path, {method: method, headers: headers,
                                             body: body === undefined ? undefined : JSON.stringify(body)});
    const payload = response.status === 204 ? null : await response.json();
    if (!response.ok) {
      const error = new Error((payload && payload.detail) || response.statusText);
      error.status = response.status;
      throw error;
    }
    return payload;
  }

  function fail(error) {
    $("error").textContent = error.status === 403 ? texts.denied : error.message;
    $("error").hidden = false;
  }

  function linkify(target, text) {
    // URLs of this site become links; everything else stays text (no HTML from mail bodies).
    const pattern = /https?:\/\/\S+/g;
    let last = 0;
    let match;
    while ((match = pattern.exec(text)) !== null) {
      target.append(text.slice(last, match.index));
      const url = new URL(match[0]);
      if (url.origin === window.location.origin || url.hostname === "127.0.0.1" || url.hostname === "localhost") {
        const a = document.createElement("a");
        a.href = url.pathname + url.search;
        a.textContent = match[0];
        target.append(a);
      } else {
        target.append(match[0]);
      }
      last = match.index + match[0].length;
    }
    target.append(text.slice(last));
  }

  async function show(mailId) {
    const mail = await call("GET", "/outbox/" + mailId);
    $("mails").hidden = true;
    $("mail").hidden = false;
    $("mail-subject").textContent = mail.subject;
    $("mail-meta").textContent = mail.to_address + " · " + when.format(new Date(mail.created_at));
    $("mail-body").textContent = "";
    linkify($("mail-body"), mail.body_text);
  }

  async function list() {
    $("error").hidden = true;
    const mails = await call("GET", "/outbox?limit=100");
    $("login").hidden = true;
    $("sign-out").hidden = false;
    $("mail").hidden = true;
    $("mails").hidden = false;
    const rows = $("mail-rows");
    rows.textContent = "";
    mails.forEach(function (mail) {
      const row = rows.insertRow();
      row.insertCell().textContent = when.format(new Date(mail.created_at));
      row.insertCell().textContent = mail.to_address;
      const subject = row.insertCell();
      const open = document.createElement("button");
      open.type = "button";
      open.className = "link";
      open.textContent = mail.subject;
      open.addEventListener("click", function () { show(mail.mail_id).catch(fail); });
      subject.append(open);
      const state = row.insertCell();
      state.className = "state";
      state.textContent = mail.sent_at ? texts.sent : texts.queued;
    });
    $("empty").hidden = mails.length > 0;
  }

  $("login").addEventListener("submit", async function (event) {
    event.preventDefault();
    const form = event.target.elements;
    try {
      const login = await call("POST", "/login", {email: form.email.value, password: form.password.value});
      sessionStorage.setItem("loyalty-staff-token", login.token);
      await list();
    } catch (error) { fail(error); }
  });
  $("refresh").addEventListener("click", function () { list().catch(fail); });
  $("back").addEventListener("click", function () { list().catch(fail); });
  $("sign-out").addEventListener("click", async function () {
    try { await call("POST", "/logout"); } catch (error) { /* gone already */ }
    sessionStorage.removeItem("loyalty-staff-token");
    window.location.reload();
  });
  if (token()) { list().catch(function (error) { sessionStorage.removeItem("loyalty-staff-token"); fail(error); }); }
})();
