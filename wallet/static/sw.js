// The wallet's service worker, one per program, served at /wallet/<program>/sw.js with the
// scope /wallet/<program> (the app sends Service-Worker-Allowed for it).
//
// - The app shell (styles, scripts, the QR encoder, the icons) is cached on install, one cache
//   per version of the wallet's static files, and answered from that cache.
// - The home page and the card page are fetched from the network first; each good answer is
//   kept, and when the network fails the kept copy is answered, marked offline (data-offline on
//   <body>, the time it was saved). So the card (its codes are computed on the device) and the
//   last known balance show offline.
// - The card's barcode image likewise; nothing else of the API is touched (the card's secret,
//   the live balance and every change go to the server or fail).
"use strict";

const VERSION = "__WALLET_VERSION__";
const BASE = self.location.pathname.replace(/\/sw\.js$/, "");
const PROGRAM = BASE.split("/").pop();
const SHELL = "wallet-shell:" + BASE + ":" + VERSION;
const PAGES = "wallet-pages:" + BASE;
const STATIC = "/wallet/static/";
const SHELL_FILES = [
  STATIC + "wallet.css",
  STATIC + "wallet.js",
  STATIC + "pwa.js",
  STATIC + "card.js",
  STATIC + "vendor/qrcode.js",
  BASE + "/manifest.webmanifest",
  BASE + "/icon-192.png",
  BASE + "/icon-512.png",
];
// Pages kept for offline use, and the card's barcode image.
const KEPT = [BASE, BASE + "/card", "/api/v1/wallet/" + PROGRAM + "/card/barcode.svg"];

self.addEventListener("install", function (event) {
  event.waitUntil(
    caches.open(SHELL).then(function (cache) { return cache.addAll(SHELL_FILES); })
      .then(function () { return self.skipWaiting(); })
  );
});

self.addEventListener("activate", function (event) {
  event.waitUntil(
    caches.keys().then(function (names) {
      return Promise.all(names.filter(function (name) {
        return name.indexOf("wallet-shell:" + BASE + ":") === 0 && name !== SHELL;
      }).map(function (name) { return caches.delete(name); }));
    }).then(function () { return self.clients.claim(); })
  );
});

self.addEventListener("message", function (event) {
  if (event.data && event.data.type === "forget") {
    event.waitUntil(caches.delete(PAGES));
  }
});

function inScope(path) {
  return path === BASE || path.indexOf(BASE + "/") === 0;
}

// A copy of a good answer, with the time it was saved.
async function keep(key, response) {
  const body = await response.clone().arrayBuffer();
  const headers = new Headers(response.headers);
  headers.set("X-Wallet-Saved", new Date().toISOString());
  const cache = await caches.open(PAGES);
  await cache.put(key, new Response(body, {status: response.status, statusText: response.statusText, headers: headers}));
}

// The kept page, marked offline.
async function offlineCopy(key) {
  const cache = await caches.open(PAGES);
  const kept = await cache.match(key);
  if (!kept) { return null; }
  const saved = kept.headers.get("X-Wallet-Saved") || "";
  const html = (await kept.text()).replace("<body ", '<body data-offline="' + saved.replace(/[^0-9TZ:.+-]/g, "") + '" ');
  return new Response(html, {status: 200, headers: kept.headers});
}

async function page(request, key) {
  try {
    const response = await fetch(request);
    if (response.ok && response.type === "basic" && !response.redirected && key) {
      await keep(key, response);
    }
    return response;
  } catch (error) {
    const copy = (key && await offlineCopy(key)) || await offlineCopy(BASE);
    if (copy) { return copy; }
    throw error;
  }
}

async function image(request, key) {
  try {
    const response = await fetch(request);
    if (response.ok) { await keep(key, response); }
    return response;
  } catch (error) {
    const kept = await (await caches.open(PAGES)).match(key);
    if (kept) { return kept; }
    throw error;
  }
}

async function shell(request) {
  const cache = await caches.open(SHELL);
  const hit = await cache.match(request, {ignoreSearch: true});
  if (hit) { return hit; }
  const response = await fetch(request);
  if (response.ok && response.type === "basic") { await cache.put(request, response.clone()); }
  return response;
}

self.addEventListener("fetch", function (event) {
  const request = event.request;
  if (request.method !== "GET") { return; }
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) { return; }
  const path = url.pathname;
  if (request.mode === "navigate") {
    if (!inScope(path)) { return; }  // another program's wallet
    event.respondWith(page(request, KEPT.indexOf(path) >= 0 ? path : null));
  } else if (path === KEPT[2]) {
    event.respondWith(image(request, path));
  } else if (path.indexOf(STATIC) === 0 || SHELL_FILES.indexOf(path) >= 0) {
    event.respondWith(shell(request));
  }
});
