// The wallet's forms: sign in with a mailed code, join, redeem a reward, sign out.
// Talks JSON to /api/v1/wallet/<program>; the session is an HttpOnly cookie the script never sees.
(function () {
  "use strict";
  const body = document.body;
  const program = body.dataset.program;
  const lang = body.dataset.lang || "de";
  const api = "/api/v1/wallet/" + program;
  const errorBox = document.getElementById("error");

  async function call(method, path, data, headers) {
    const response = await fetch(api + path, {
      method: method,
      headers: Object.assign({"Content-Type": "application/json", "Accept": "application/json"}, headers || {}),
      body: data === undefined ? undefined : JSON.stringify(data),
      credentials: "same-origin",
    });
    let payload = null;
    const text = await response.text();
    if (text) { try { payload = JSON.parse(text); } catch (e) { payload = null; } }
    if (!response.ok) {
      const error = new Error((payload && payload.detail) || response.statusText);
      error.code = payload && payload.code;
      throw error;
    }
    return payload;
  }

  function showError(error) {
    if (!errorBox) { return; }
    errorBox.textContent = (error && error.message) || errorBox.dataset.fallback || errorBox.textContent;
    errorBox.hidden = false;
  }
  if (errorBox) { errorBox.dataset.fallback = errorBox.textContent; }
  function clearError() { if (errorBox) { errorBox.hidden = true; } }

  function busy(form, on) {
    form.querySelectorAll("button").forEach(function (b) { b.disabled = on; });
  }

  // --- signing in -------------------------------------------------------------------------
  const requestForm = document.getElementById("request-code");
  const codeForm = document.getElementById("enter-code");
  let email = "";

  function askForCode(address) {
    email = address;
    requestForm.hidden = true;
    codeForm.hidden = false;
    codeForm.elements.code.value = "";
    codeForm.elements.code.focus();
  }

  if (requestForm) {
    requestForm.addEventListener("submit", async function (event) {
      event.preventDefault();
      clearError();
      const address = requestForm.elements.email.value.trim();
      if (!address) { requestForm.elements.email.focus(); return; }
      busy(requestForm, true);
      try {
        await call("POST", "/sign-in/code", {email: address});
        askForCode(address);
      } catch (error) { showError(error); } finally { busy(requestForm, false); }
    });
    codeForm.addEventListener("submit", async function (event) {
      event.preventDefault();
      clearError();
      busy(codeForm, true);
      try {
        await call("POST", "/sign-in", {email: email, code: codeForm.elements.code.value});
        window.location.reload();
      } catch (error) { showError(error); busy(codeForm, false); }
    });
    codeForm.querySelector("[data-action=other-address]").addEventListener("click", function () {
      codeForm.hidden = true;
      requestForm.hidden = false;
      requestForm.elements.email.focus();
    });
  }

  const joinForm = document.getElementById("join-form");
  if (joinForm) {
    joinForm.addEventListener("submit", async function (event) {
      event.preventDefault();
      clearError();
      const f = joinForm.elements;
      if (!f.terms_accepted.checked) { f.terms_accepted.focus(); showError({message: f.terms_accepted.parentElement.textContent.trim()}); return; }
      busy(joinForm, true);
      try {
        await call("POST", "/enrollment", {
          display_name: f.display_name.value.trim(),
          email: f.email.value.trim(),
          phone: f.phone.value.trim() || null,
          terms_accepted: true,
          marketing: f.marketing.checked,
          locale: lang,
          invite: (f.invite && f.invite.value) || null,
        });
        document.getElementById("joined").hidden = false;
        requestForm.elements.email.value = f.email.value.trim();
        askForCode(f.email.value.trim());
        document.getElementById("sign-in").scrollIntoView({behavior: "smooth"});
      } catch (error) { showError(error); } finally { busy(joinForm, false); }
    });
  }

  // --- rewards ----------------------------------------------------------------------------
  document.querySelectorAll("[data-action=redeem]").forEach(function (button) {
    button.addEventListener("click", async function () {
      clearError();
      const question = document.getElementById("redeem-confirm").innerHTML
        .replace("{reward}", button.dataset.name).replace("{points}", button.dataset.points);
      const text = new DOMParser().parseFromString(question, "text/html").documentElement.textContent;
      if (!window.confirm(text)) { return; }
      button.disabled = true;
      try {
        const key = (window.crypto && crypto.randomUUID) ? crypto.randomUUID() : String(Date.now()) + Math.random();
        const result = await call("POST", "/rewards/" + encodeURIComponent(button.dataset.reward) + "/redeem",
                                  {}, {"Idempotency-Key": key});
        document.getElementById("voucher-code").textContent = result.voucher_code;
        const dialog = document.getElementById("voucher");
        dialog.addEventListener("close", function () { window.location.reload(); }, {once: true});
        dialog.showModal();
      } catch (error) { showError(error); button.disabled = false; }
    });
  });

  // --- the Net Promoter question ------------------------------------------------------------
  const feedbackForm = document.getElementById("feedback-form");
  if (feedbackForm) {
    const done = function () {
      feedbackForm.hidden = true;
      document.getElementById("feedback-thanks").hidden = false;
    };
    feedbackForm.addEventListener("submit", async function (event) {
      event.preventDefault();
      clearError();
      const picked = feedbackForm.querySelector("input[name=score]:checked");
      if (!picked) { feedbackForm.querySelector("input[name=score]").focus(); return; }
      busy(feedbackForm, true);
      try {
        await call("POST", "/feedback", {score: Number(picked.value),
                                         comment: feedbackForm.elements.comment.value.trim() || null});
        done();
      } catch (error) { showError(error); busy(feedbackForm, false); }
    });
    feedbackForm.querySelector("[data-action=feedback-later]").addEventListener("click", async function () {
      try { await call("POST", "/feedback", {score: null}); } catch (error) { /* asked again later */ }
      document.getElementById("feedback").hidden = true;
    });
  }

  // --- invitations ------------------------------------------------------------------------
  const inviteLink = document.querySelector("#invite input");
  if (inviteLink) {
    const copy = document.querySelector("[data-action=invite-copy]");
    copy.addEventListener("click", async function () {
      try { await navigator.clipboard.writeText(inviteLink.value); } catch (error) { inviteLink.select(); return; }
      copy.textContent = copy.dataset.done;
    });
    const share = document.querySelector("[data-action=invite-share]");
    if (navigator.share) {
      share.hidden = false;
      share.addEventListener("click", function () {
        navigator.share({url: inviteLink.value}).catch(function () { /* dismissed */ });
      });
    }
  }

  // --- profile ----------------------------------------------------------------------------
  const profileForm = document.getElementById("profile-form");
  if (profileForm) {
    profileForm.addEventListener("submit", async function (event) {
      event.preventDefault();
      clearError();
      const f = profileForm.elements;
      busy(profileForm, true);
      try {
        await call("PATCH", "/profile", {display_name: f.display_name.value.trim(),
                                         phone: f.phone.value.trim() || null, locale: f.locale.value});
        document.cookie = "wallet_lang=" + f.locale.value + "; path=/wallet; SameSite=Lax";
        window.location.reload();
      } catch (error) { showError(error); busy(profileForm, false); }
    });
  }
  document.querySelectorAll("[data-action=marketing]").forEach(function (button) {
    button.addEventListener("click", async function () {
      clearError();
      try {
        await call("PUT", "/consents/marketing", {granted: button.dataset.granted === "true"});
        window.location.reload();
      } catch (error) { showError(error); }
    });
  });
  const termsForm = document.getElementById("terms-form");
  if (termsForm) {
    termsForm.addEventListener("submit", async function (event) {
      event.preventDefault();
      clearError();
      if (!termsForm.elements.terms_accepted.checked) { termsForm.elements.terms_accepted.focus(); return; }
      busy(termsForm, true);
      try {
        await call("PUT", "/consents/terms", {granted: true});
        window.location.reload();
      } catch (error) { showError(error); busy(termsForm, false); }
    });
  }
  const eraseForm = document.getElementById("erase-form");
  if (eraseForm) {
    eraseForm.addEventListener("submit", async function (event) {
      event.preventDefault();
      clearError();
      busy(eraseForm, true);
      try {
        await call("POST", "/erase", {confirm: eraseForm.elements.confirm.value.trim()});
        window.location.href = "/wallet/" + program;
      } catch (error) { showError(error); busy(eraseForm, false); }
    });
  }

  // --- live balance -----------------------------------------------------------------------
  // A sale at any till shows at once: the server pushes the new balance (server-sent events).
  const balanceValue = document.getElementById("balance-value");
  if (balanceValue && window.EventSource) {
    const numbers = new Intl.NumberFormat(lang === "en" ? "en-GB" : "de-DE");
    const source = new EventSource(api + "/events");
    source.addEventListener("balance", function (event) {
      const balance = JSON.parse(event.data);
      if (String(balance.available) === balanceValue.dataset.value) { return; }
      balanceValue.dataset.value = String(balance.available);
      balanceValue.textContent = numbers.format(balance.available);
      const section = balanceValue.closest(".balance");
      section.classList.remove("flash");
      void section.offsetWidth;  // restart the animation
      section.classList.add("flash");
    });
    window.addEventListener("pagehide", function () { source.close(); });
  }

  // --- signing out ------------------------------------------------------------------------
  document.querySelectorAll("[data-action=sign-out], [data-action=sign-out-everywhere]").forEach(function (button) {
    button.addEventListener("click", async function () {
      try {
        await call("POST", "/" + button.dataset.action, {});
      } catch (error) { /* the session may be gone already */ }
      window.location.href = "/wallet/" + program;
    });
  });
})();
