// The card screen: the rotating code computed on this device, shown as a QR code that changes
// every 30 seconds, with a countdown; full-screen mode that keeps the screen on.
//
// The code is "08" + the 10-digit member number + an 8-digit RFC 6238 TOTP (HMAC-SHA1 over the
// 30-second step, dynamic truncation), the value the till's identify accepts. The secret comes
// from GET /api/v1/wallet/<program>/card once per session and stays on the device (pwa.js's
// walletDevice: a non-extractable WebCrypto key in IndexedDB), so the card works offline.
(function () {
  "use strict";
  const card = document.getElementById("card");
  if (!card) { return; }
  const body = document.body;
  const program = body.dataset.program;
  const storeKey = program + ":" + card.dataset.member;
  const pageVersion = Number(card.dataset.version);
  const qrBox = document.getElementById("card-qr");
  const codeText = document.getElementById("card-code");
  const countdownText = document.getElementById("card-countdown");
  const countdownBar = document.getElementById("card-countdown-bar");
  const countdownTemplate = card.dataset.countdown || "{seconds}";
  const SVG_NS = "http://www.w3.org/2000/svg";
  const QUIET_ZONE = 4;  // modules of white around the code (ISO/IEC 18004)
  const device = window.walletDevice;

  function show(id) { document.getElementById(id).hidden = false; }

  // --- the secret -----------------------------------------------------------------------
  function base32(text) {
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    const clean = text.replace(/=+$/, "").toUpperCase();
    const bytes = new Uint8Array(Math.floor(clean.length * 5 / 8));
    let bits = 0, value = 0, index = 0;
    for (let i = 0; i < clean.length; i++) {
      const digit = alphabet.indexOf(clean[i]);
      if (digit < 0) { throw new Error("not base32"); }
      value = (value << 5) | digit;
      bits += 5;
      if (bits >= 8) {
        bytes[index++] = (value >>> (bits - 8)) & 0xff;
        bits -= 8;
      }
    }
    return bytes;
  }

  function importKey(raw) {
    return crypto.subtle.importKey("raw", raw, {name: "HMAC", hash: "SHA-1"}, false, ["sign"]);
  }

  async function usable(stored) {
    if (!stored) { return null; }
    if (stored.key) { return stored; }
    if (stored.secret) { return Object.assign({}, stored, {key: await importKey(base32(stored.secret))}); }
    return null;
  }

  // The card's key: from this device, else from the server (once per session). A session that
  // has not had it yet is made to claim it even when this device holds it already, so that no
  // copy of the session cookie can get it later; a session that has had it, on a device
  // without it, must sign in again.
  async function loadCard() {
    const stored = device ? await device.get(storeKey) : null;
    const current = stored && stored.version === pageVersion;
    if (stored && body.dataset.offline) { return usable(stored); }
    if (card.dataset.delivered === "true") {
      if (current) { return usable(stored); }
      show("card-sign-in-again");
      return null;
    }
    let response;
    try {
      response = await fetch("/api/v1/wallet/" + program + "/card", {
        headers: {"Accept": "application/json"}, credentials: "same-origin", cache: "no-store",
      });
    } catch (error) {
      if (stored) { return usable(stored); }
      show("card-not-on-device");
      return null;
    }
    if (response.status === 409) { show("card-sign-in-again"); return null; }
    if (!response.ok) {
      if (stored) { return usable(stored); }
      show("card-not-on-device");
      return null;
    }
    const data = await response.json();
    const entry = {
      key: await importKey(base32(data.secret)),
      memberNumber: data.member_number,
      digits: data.digits,
      step: data.step_seconds,
      version: data.version,
    };
    if (device) { await device.put(storeKey, entry, data.secret); }
    return entry;
  }

  // --- RFC 6238 -----------------------------------------------------------------------
  async function totp(key, step, digits) {
    const counter = new DataView(new ArrayBuffer(8));
    counter.setUint32(0, Math.floor(step / 4294967296));
    counter.setUint32(4, step >>> 0);
    const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, counter.buffer));
    const offset = mac[mac.length - 1] & 0x0f;
    const binary = ((mac[offset] & 0x7f) << 24) | (mac[offset + 1] << 16) |
      (mac[offset + 2] << 8) | mac[offset + 3];
    return String(binary % Math.pow(10, digits)).padStart(digits, "0");
  }

  // --- the QR code: error correction M, numeric mode, black on white, 4-module quiet zone ---
  function drawQr(value) {
    const qr = qrcode(0, "M");
    qr.addData(value, "Numeric");
    qr.make();
    const count = qr.getModuleCount();
    const side = count + 2 * QUIET_ZONE;
    let path = "";
    for (let y = 0; y < count; y++) {
      for (let x = 0; x < count;) {
        if (!qr.isDark(y, x)) { x++; continue; }
        let run = 1;
        while (x + run < count && qr.isDark(y, x + run)) { run++; }
        path += "M" + (x + QUIET_ZONE) + " " + (y + QUIET_ZONE) + "h" + run + "v1h-" + run + "z";
        x += run;
      }
    }
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", "0 0 " + side + " " + side);
    svg.setAttribute("shape-rendering", "crispEdges");
    svg.setAttribute("aria-hidden", "true");
    const background = document.createElementNS(SVG_NS, "rect");
    background.setAttribute("width", side);
    background.setAttribute("height", side);
    background.setAttribute("fill", "#ffffff");
    const modules = document.createElementNS(SVG_NS, "path");
    modules.setAttribute("d", path);
    modules.setAttribute("fill", "#000000");
    svg.append(background, modules);
    qrBox.replaceChildren(svg);
  }

  function grouped(value) {
    return value.replace(/(\d{4})(?=\d)/g, "$1 ");
  }

  // --- the code of the moment, and the countdown to the next ----------------------------------
  let shownStep = -1;
  let timer = 0;
  async function tick(entry) {
    clearTimeout(timer);
    const stepMs = entry.step * 1000;
    const now = Date.now();
    const step = Math.floor(now / stepMs);
    if (step !== shownStep) {
      const value = "08" + entry.memberNumber + await totp(entry.key, step, entry.digits);
      shownStep = step;
      drawQr(value);
      codeText.textContent = grouped(value);
      card.classList.add("ready");
    }
    const left = stepMs - (Date.now() % stepMs);
    countdownText.textContent = countdownTemplate.replace("{seconds}", String(Math.ceil(left / 1000)));
    countdownBar.style.transform = "scaleX(" + (left / stepMs).toFixed(3) + ")";
    timer = setTimeout(function () { tick(entry); }, Math.min(250, left + 5));
  }

  // --- full screen, screen kept on -------------------------------------------------------
  const openButton = card.querySelector("[data-action=fullscreen]");
  const closeButton = card.querySelector("[data-action=fullscreen-close]");
  let wakeLock = null;

  async function keepAwake() {
    if (!("wakeLock" in navigator) || wakeLock || document.visibilityState !== "visible") { return; }
    try {
      wakeLock = await navigator.wakeLock.request("screen");
      wakeLock.addEventListener("release", function () { wakeLock = null; });
    } catch (error) { wakeLock = null; /* refused (battery saver, policy): the screen may dim */ }
  }

  function letSleep() {
    if (wakeLock) { wakeLock.release().catch(function () {}); wakeLock = null; }
  }

  function presenting(on) {
    card.classList.toggle("presenting", on);
    body.classList.toggle("presenting-card", on);
    openButton.hidden = on;
    closeButton.hidden = !on;
    if (on) { keepAwake(); } else { letSleep(); }
  }

  openButton.addEventListener("click", function () {
    presenting(true);
    if (card.requestFullscreen) {
      card.requestFullscreen({navigationUI: "hide"}).catch(function () { /* the class alone */ });
    }
    closeButton.focus();
  });
  closeButton.addEventListener("click", function () {
    if (document.fullscreenElement && document.exitFullscreen) {
      document.exitFullscreen().catch(function () {});
    }
    presenting(false);
    openButton.focus();
  });
  document.addEventListener("fullscreenchange", function () {
    if (!document.fullscreenElement && card.classList.contains("presenting")) { presenting(false); }
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && card.classList.contains("presenting")) { presenting(false); }
  });

  // --- "Save to Google Wallet": the signed link is made for this member, then opened ----------
  const googleButton = document.querySelector("[data-action=google-wallet]");
  if (googleButton) {
    googleButton.addEventListener("click", async function () {
      googleButton.disabled = true;
      document.getElementById("wallet-pass-failed").hidden = true;
      try {
        const response = await fetch(googleButton.dataset.url, {
          headers: {"Accept": "application/json"}, credentials: "same-origin", cache: "no-store",
        });
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        const data = await response.json();
        if (typeof data.save_url !== "string" || data.save_url.indexOf("https://pay.google.com/") !== 0) {
          throw new Error("not a Google Wallet link");
        }
        window.location.assign(data.save_url);
      } catch (error) {
        show("wallet-pass-failed");
      } finally {
        googleButton.disabled = false;
      }
    });
  }

  // --- start -----------------------------------------------------------------------------
  if (!window.crypto || !crypto.subtle || typeof qrcode !== "function") {
    show("card-unsupported");
    return;
  }
  loadCard().then(function (entry) {
    if (!entry) { card.classList.add("no-code"); return; }
    tick(entry);
    // Timers sleep in the background: on return, show the code of the moment at once, and the
    // wake lock (released by the browser when the page was hidden) is taken again.
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState !== "visible") { return; }
      tick(entry);
      if (card.classList.contains("presenting")) { keepAwake(); }
    });
  }).catch(function () {
    card.classList.add("no-code");
    show("card-not-on-device");
  });
})();
