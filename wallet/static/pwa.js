// The wallet as an installable app: registers the service worker (sw.js, served per program at
// /wallet/<program>/sw.js), shows "offline" on a page the worker answered from its cache, keeps
// the card's key on the device (IndexedDB, `walletDevice` below, used by card.js), and forgets
// both when the member signs out.
(function () {
  "use strict";
  const script = document.currentScript;
  const body = document.body;
  const program = body && body.dataset.program;
  const base = "/wallet/" + program;
  const DB_NAME = "loyalty-wallet";
  const STORE = "cards";
  const FALLBACK_PREFIX = "loyalty-wallet-card:";

  // --- the card's key on this device ----------------------------------------------------
  // IndexedDB keeps the key as a non-extractable CryptoKey: scripts can compute codes with it
  // but not read it back. Where IndexedDB cannot store it, localStorage keeps the raw secret.
  function openDb() {
    return new Promise(function (resolve, reject) {
      if (!window.indexedDB) { reject(new Error("no IndexedDB")); return; }
      const request = indexedDB.open(DB_NAME, 1);
      request.onupgradeneeded = function () { request.result.createObjectStore(STORE); };
      request.onsuccess = function () { resolve(request.result); };
      request.onerror = function () { reject(request.error); };
    });
  }

  async function withStore(mode, work) {
    const db = await openDb();
    try {
      return await new Promise(function (resolve, reject) {
        const tx = db.transaction(STORE, mode);
        const request = work(tx.objectStore(STORE));
        tx.oncomplete = function () { resolve(request ? request.result : undefined); };
        tx.onerror = function () { reject(tx.error); };
        tx.onabort = function () { reject(tx.error); };
      });
    } finally { db.close(); }
  }

  const walletDevice = {
    async get(key) {
      try {
        const found = await withStore("readonly", function (s) { return s.get(key); });
        if (found) { return found; }
      } catch (e) { /* fall through to localStorage */ }
      try {
        const raw = localStorage.getItem(FALLBACK_PREFIX + key);
        return raw ? JSON.parse(raw) : null;
      } catch (e) { return null; }
    },
    async put(key, value, rawSecret) {
      try {
        await withStore("readwrite", function (s) { return s.put(value, key); });
        return;
      } catch (e) { /* keep it in localStorage instead */ }
      const copy = Object.assign({}, value, {key: null, secret: rawSecret});
      localStorage.setItem(FALLBACK_PREFIX + key, JSON.stringify(copy));
    },
    async forgetProgram(programId) {
      const prefix = programId + ":";
      try {
        await withStore("readwrite", function (s) {
          return s.delete(IDBKeyRange.bound(prefix, prefix + "\uffff"));
        });
      } catch (e) { /* nothing stored */ }
      try {
        Object.keys(localStorage).forEach(function (name) {
          if (name.indexOf(FALLBACK_PREFIX + prefix) === 0) { localStorage.removeItem(name); }
        });
      } catch (e) { /* storage unavailable */ }
    },
  };
  window.walletDevice = walletDevice;

  if (!program) { return; }

  // --- offline marker ---------------------------------------------------------------------
  // The service worker sets data-offline (when the page was saved) on pages from its cache.
  const texts = script ? script.dataset : {};
  let note = null;
  function showOffline(on) {
    if (!on) { if (note) { note.hidden = true; } return; }
    if (!note) {
      note = document.createElement("p");
      note.className = "offline-note";
      note.id = "offline-note";
      note.setAttribute("role", "status");
      let text = texts.offline || "Offline";
      const saved = body.dataset.offline ? new Date(body.dataset.offline) : null;
      if (saved && !isNaN(saved.getTime())) {
        const when = new Intl.DateTimeFormat(body.dataset.lang === "en" ? "en-GB" : "de-DE",
          {dateStyle: "medium", timeStyle: "short"}).format(saved);
        text += " · " + (texts.updated || "Updated") + " " + when;
      }
      note.textContent = text;
      const main = document.querySelector("main");
      (main || body).insertBefore(note, (main || body).firstChild);
    }
    note.hidden = false;
  }
  const fromCache = Boolean(body.dataset.offline);
  showOffline(fromCache || navigator.onLine === false);
  window.addEventListener("offline", function () { showOffline(true); });
  window.addEventListener("online", function () { showOffline(fromCache); });

  // --- service worker ---------------------------------------------------------------------
  if ("serviceWorker" in navigator && window.isSecureContext) {
    navigator.serviceWorker.register(base + "/sw.js", {scope: base}).catch(function () {
      /* no offline copy then; the wallet works online as before */
    });
  }

  // --- signing out forgets this device's copies ---------------------------------------------
  async function forget() {
    await walletDevice.forgetProgram(program);
    if (navigator.serviceWorker && navigator.serviceWorker.controller) {
      navigator.serviceWorker.controller.postMessage({type: "forget"});
    }
    if (window.caches) {
      try { await caches.delete("wallet-pages:" + base); } catch (e) { /* nothing cached */ }
    }
  }
  document.querySelectorAll("[data-action=sign-out], [data-action=sign-out-everywhere]").forEach(function (button) {
    button.addEventListener("click", function () { forget(); });
  });
})();
