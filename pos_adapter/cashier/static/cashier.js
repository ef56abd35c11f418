// The cashier page (/pos): scan a member, enter the basket, preview, redeem, complete, refund.
// Plain browser JavaScript, no framework, no build step, no inline script (CSP: script-src 'self').
// Talks to the canonical terminal REST API under /api/v1/pos. Money is in minor units (cents)
// everywhere; amounts typed by the cashier are parsed to cents from the digits, never via floats.
"use strict";

(function () {
  // ---------------------------------------------------------------- setup, strings, format

  const body = document.body;
  const LANG = body.dataset.lang === "en" ? "en" : "de";
  const API = body.dataset.api || "/api/v1";
  const STR = parseJson(body.dataset.i18n) || {};
  const LOCALE = LANG === "de" ? "de-DE" : "en-GB";
  const AUTH_KEY = "loyalty.pos.auth";
  const TERMINAL_KEY = "loyalty.pos.terminal";
  const SALE_KEY = "loyalty.pos.sale";
  const REQUEST_TIMEOUT_MS = 20000;
  const MAX_CENTS = 1e12;

  function parseJson(text) {
    if (!text) return null;
    try {
      return JSON.parse(text);
    } catch (_e) {
      return null;
    }
  }

  /** The UI string `key`, with {name} placeholders filled from `vars`. */
  function t(key, vars) {
    let text = Object.prototype.hasOwnProperty.call(STR, key) ? STR[key] : key;
    if (vars) {
      for (const name of Object.keys(vars)) text = text.split("{" + name + "}").join(String(vars[name]));
    }
    return text;
  }

  /** A string whose key is computed (a code from the API); `fallback` when there is none. */
  function tCode(key, fallback) {
    return Object.prototype.hasOwnProperty.call(STR, key) ? STR[key] : fallback;
  }

  /** A {"de","en"} text from the API in the UI language (the other one when it is empty). */
  function localized(text, fallback) {
    if (!text) return fallback || "";
    if (typeof text === "string") return text;
    return text[LANG] || text[LANG === "de" ? "en" : "de"] || fallback || "";
  }

  const pointsFormat = new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 0 });
  function formatPoints(n) {
    return pointsFormat.format(Number(n) || 0);
  }

  const SYMBOLS = { EUR: "€", CHF: "CHF", GBP: "£", USD: "$" };

  /** Cents as money: "1.234,56 €" in German, "€1,234.56" in English. Integer digits only. */
  function formatMoney(cents, currency) {
    const value = Math.trunc(Number(cents) || 0);
    const digits = String(Math.abs(value)).padStart(3, "0");
    const group = LANG === "de" ? "." : ",";
    const whole = digits.slice(0, -2).replace(/\B(?=(\d{3})+(?!\d))/g, group);
    const number = whole + (LANG === "de" ? "," : ".") + digits.slice(-2);
    const sign = value < 0 ? "−" : "";
    const symbol = SYMBOLS[currency || "EUR"] || currency;
    if (LANG === "de") return sign + number + "\u00a0" + symbol;
    return sign + (symbol.length === 1 ? symbol : symbol + "\u00a0") + number;
  }

  /** Cents as the number a cashier types: "1234,50" in German, "1234.50" in English. */
  function formatAmount(cents) {
    const digits = String(Math.abs(Math.trunc(Number(cents) || 0))).padStart(3, "0");
    return digits.slice(0, -2) + (LANG === "de" ? "," : ".") + digits.slice(-2);
  }

  /**
   * A typed amount in cents, or null when it is not one: "12", "12,34", "12.34", "12,5",
   * "1.234,56", "1,234.56", "€ 12,34". "1.234" alone is ambiguous and refused.
   */
  function parseMoney(text) {
    let s = String(text == null ? "" : text)
      .replace(/[\s\u00a0]/g, "")
      .replace(/€|eur/gi, "");
    if (!s) return null;
    let whole;
    let frac = "";
    let m;
    if ((m = /^(\d+)(?:[.,](\d{1,2}))?$/.exec(s))) {
      whole = m[1];
      frac = m[2] || "";
    } else if ((m = /^(\d{1,3}(?:\.\d{3})+),(\d{1,2})$/.exec(s))) {
      whole = m[1].split(".").join("");
      frac = m[2];
    } else if ((m = /^(\d{1,3}(?:,\d{3})+)\.(\d{1,2})$/.exec(s))) {
      whole = m[1].split(",").join("");
      frac = m[2];
    } else {
      return null;
    }
    whole = whole.replace(/^0+(?=\d)/, "");
    if (whole.length > 10) return null;
    const cents = parseInt(whole, 10) * 100 + parseInt((frac + "00").slice(0, 2), 10);
    return cents <= MAX_CENTS ? cents : null;
  }

  function parseQuantity(text) {
    const s = String(text == null ? "" : text).trim();
    if (!/^\d{1,6}$/.test(s)) return null;
    const n = parseInt(s, 10);
    return n >= 1 && n <= 100000 ? n : null;
  }

  function formatTime(iso) {
    const d = new Date(iso);
    if (isNaN(d.getTime())) return "";
    return d.toLocaleTimeString(LOCALE, { hour: "2-digit", minute: "2-digit" });
  }

  function pad(n, width) {
    return String(n).padStart(width || 2, "0");
  }

  /** Now as ISO-8601 with the browser's UTC offset: 2025-03-01T14:05:09+01:00. */
  function nowWithOffset() {
    const d = new Date();
    const off = -d.getTimezoneOffset();
    const sign = off >= 0 ? "+" : "-";
    const abs = Math.abs(off);
    return (
      d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) +
      "T" + pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()) +
      sign + pad(Math.floor(abs / 60)) + ":" + pad(abs % 60)
    );
  }

  function randomHex(bytes) {
    const a = new Uint8Array(bytes);
    crypto.getRandomValues(a);
    return Array.from(a, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function uuid() {
    if (crypto.randomUUID) return crypto.randomUUID();
    const h = randomHex(16).split("");
    h[12] = "4";
    h[16] = "89ab"[parseInt(h[16], 16) & 3];
    const s = h.join("");
    return s.slice(0, 8) + "-" + s.slice(8, 12) + "-" + s.slice(12, 16) + "-" + s.slice(16, 20) + "-" + s.slice(20);
  }

  function stamp() {
    const d = new Date();
    return (
      d.getFullYear() + pad(d.getMonth() + 1) + pad(d.getDate()) +
      pad(d.getHours()) + pad(d.getMinutes()) + pad(d.getSeconds())
    );
  }

  function slug(text) {
    return String(text || "").replace(/[^A-Za-z0-9_-]+/g, "").slice(0, 24) || "TILL";
  }

  // ---------------------------------------------------------------- storage

  function load(storage, key) {
    try {
      return parseJson(storage.getItem(key));
    } catch (_e) {
      return null;
    }
  }

  function save(storage, key, value) {
    try {
      if (value == null) storage.removeItem(key);
      else storage.setItem(key, JSON.stringify(value));
    } catch (_e) {
      /* private mode or full: the page still works, it just forgets on reload */
    }
  }

  // ---------------------------------------------------------------- DOM helpers

  const $ = (id) => document.getElementById(id);

  function el(tag, attrs) {
    const node = document.createElement(tag);
    if (attrs) {
      for (const name of Object.keys(attrs)) {
        const value = attrs[name];
        if (value == null || value === false) continue;
        if (name === "text") node.textContent = value;
        else if (name === "class") node.className = value;
        else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
        else node.setAttribute(name, value === true ? "" : value);
      }
    }
    for (let i = 2; i < arguments.length; i++) {
      const child = arguments[i];
      if (child == null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function show(node, visible) {
    node.hidden = !visible;
  }

  const ui = {
    login: $("login"),
    till: $("till"),
    where: $("where"),
    banner: $("banner"),
    bannerText: $("banner-text"),
    status: $("status"),
    scan: $("scan"),
    camera: $("btn-camera"),
    member: $("member"),
    noMember: $("no-member"),
    rewardsBox: $("rewards-box"),
    rewards: $("rewards"),
    total: $("total-amount"),
    linesBody: $("lines-body"),
    preview: $("preview"),
    result: $("result"),
    orders: $("dlg-orders"),
    confirm: $("dlg-confirm"),
    cameraDialog: $("dlg-camera"),
    enroll: $("dlg-enroll"),
    enrollForm: $("form-enroll"),
    enrollEmail: $("enroll-email"),
    enrollName: $("enroll-name"),
    video: $("camera-video"),
  };

  // ---------------------------------------------------------------- banner, status, focus

  function showError(message) {
    ui.banner.className = "banner banner-error";
    ui.bannerText.textContent = message;
    show(ui.banner, true);
  }

  function showInfo(message) {
    ui.banner.className = "banner banner-info";
    ui.bannerText.textContent = message;
    show(ui.banner, true);
  }

  function clearBanner() {
    show(ui.banner, false);
    ui.bannerText.textContent = "";
  }

  function anyDialogOpen() {
    return Boolean(document.querySelector("dialog[open]"));
  }

  function isTextEntry(node) {
    if (!node || !node.tagName) return false;
    const tag = node.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || node.isContentEditable;
  }

  /** The scan field gets the focus back unless a dialog is open or the login shows. */
  function focusScan() {
    if (ui.till.hidden || anyDialogOpen()) return;
    if (document.activeElement !== ui.scan) ui.scan.focus({ preventScroll: true });
  }

  // ---------------------------------------------------------------- state

  let auth = load(localStorage, AUTH_KEY);
  let terminal = load(localStorage, TERMINAL_KEY);
  let sale = load(sessionStorage, SALE_KEY) || newSale();
  let busy = false;
  let ordersCache = [];
  let refundTarget = null;
  let pendingRefund = null;
  let askPointsFor = null;

  function newSale() {
    return {
      id: null,
      scan: "",
      member: null,
      rewards: [],
      mode: "total",
      total: "",
      lines: [emptyLine()],
      preview: null,
      redemptions: [],
      occurredAt: null,
      keys: {},
      sent: false,
      result: null,
    };
  }

  function emptyLine() {
    return { sku: "", category: "", quantity: "1", price: "" };
  }

  function persist() {
    save(sessionStorage, SALE_KEY, sale);
  }

  function currency() {
    return (terminal && terminal.currency) || "EUR";
  }

  function saleOpen() {
    return Boolean(sale.member) && !sale.result;
  }

  function newTransactionId() {
    const where = terminal ? terminal.location || terminal.terminal_code : "";
    return "POS-" + slug(where) + "-" + stamp() + "-" + randomHex(3).toUpperCase();
  }

  /** The idempotency key of one logical write, kept until it gets an answer (retry-safe). */
  function keyFor(signature) {
    if (!sale.keys[signature]) {
      sale.keys[signature] = uuid();
      persist();
    }
    return sale.keys[signature];
  }

  // ---------------------------------------------------------------- the API

  /** A mistake the page finds itself (an amount that does not parse, no member yet). */
  class UiError extends Error {}

  /** An answer of the API that is not a success, or no answer (status 0). */
  class ApiError extends Error {
    constructor(message, code, status) {
      super(message);
      this.code = code;
      this.status = status;
    }
    get network() {
      return this.status === 0;
    }
  }

  async function api(method, path, payload, headers) {
    const h = Object.assign({ Accept: "application/json, application/problem+json" }, headers || {});
    if (auth) {
      h.Authorization = "Bearer " + (auth.kind === "staff" ? auth.token : auth.key);
      if (auth.kind === "staff" && auth.terminal) h["X-Terminal"] = auth.terminal;
    }
    if (payload !== undefined) h["Content-Type"] = "application/json";
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
    let res;
    let text;
    try {
      res = await fetch(API + path, {
        method: method,
        headers: h,
        body: payload === undefined ? undefined : JSON.stringify(payload),
        signal: controller.signal,
        credentials: "same-origin",
        cache: "no-store",
      });
      text = await res.text();
    } catch (_e) {
      throw new ApiError(t("err_network"), "network", 0);
    } finally {
      clearTimeout(timer);
    }
    const data = parseJson(text);
    if (!res.ok) {
      const code = (data && data.code) || "http_" + res.status;
      const detail = (data && (data.detail || data.title)) || "";
      throw new ApiError(problemText(code, detail, res.status), code, res.status);
    }
    return data;
  }

  /**
   * The banner text for a problem: the API's `detail` (written in English), or in the German
   * page our own words for the codes a cashier meets every day.
   */
  function problemText(code, detail, status) {
    const ours = tCode("error_" + code, tCode("refusal_" + code, ""));
    const text = LANG === "en" ? detail || ours : ours || detail;
    return text || t("err_http", { status: status });
  }

  /** Runs one cashier action: one at a time, errors in the red banner, state kept. */
  async function action(fn, options) {
    if (busy) return;
    busy = true;
    body.classList.add("busy");
    ui.status.textContent = t("working");
    let failed = false;
    try {
      await fn();
    } catch (error) {
      failed = true;
      if (error instanceof ApiError || error instanceof UiError) showError(error.message);
      else {
        showError(t("err_unexpected"));
        console.error(error); // eslint-disable-line no-console
      }
    } finally {
      busy = false;
      body.classList.remove("busy");
      ui.status.textContent = "";
      render();
      if (!(options && options.keepFocus)) focusScan();
      // A scan that failed stays visible, selected: the next scan replaces it.
      if (failed && options && options.selectScan && document.activeElement === ui.scan) ui.scan.select();
    }
  }

  // ---------------------------------------------------------------- sign in / out

  async function checkTerminal() {
    const info = await api("GET", "/pos/terminal");
    terminal = info;
    save(localStorage, TERMINAL_KEY, info);
  }

  async function signInWithKey(key) {
    const trimmed = key.trim();
    if (!/^lk_/.test(trimmed)) throw new UiError(t("err_key_format"));
    auth = { kind: "key", key: trimmed };
    try {
      await checkTerminal();
    } catch (error) {
      auth = null;
      throw error;
    }
    save(localStorage, AUTH_KEY, auth);
    $("login-key").value = "";
    enterTill();
  }

  async function signInAsStaff(email, password, terminalCode) {
    auth = null;
    const login = await api("POST", "/admin/login", { email: email.trim(), password: password });
    auth = { kind: "staff", token: login.token, terminal: terminalCode.trim(), expires_at: login.expires_at };
    try {
      await checkTerminal();
    } catch (error) {
      await api("POST", "/admin/logout").catch(() => null);
      auth = null;
      throw error;
    }
    save(localStorage, AUTH_KEY, auth);
    $("login-password").value = "";
    enterTill();
  }

  async function signOut() {
    if (saleOpen() && sale.sent && !(await confirmDialog(t("confirm_sign_out")))) return;
    if (auth && auth.kind === "staff") await api("POST", "/admin/logout").catch(() => null);
    auth = null;
    terminal = null;
    save(localStorage, AUTH_KEY, null);
    save(localStorage, TERMINAL_KEY, null);
    sale = newSale();
    persist();
    clearBanner();
    enterLogin();
  }

  function enterLogin() {
    show(ui.till, false);
    show(ui.login, true);
    document.querySelectorAll("[data-needs-auth]").forEach((node) => show(node, false));
    ui.where.textContent = "";
    $("login-key").value = "";
    $("login-password").value = "";
    $("login-key").focus();
  }

  function enterTill() {
    clearBanner();
    show(ui.login, false);
    show(ui.till, true);
    document.querySelectorAll("[data-needs-auth]").forEach((node) => show(node, true));
    renderBasketInputs();
    render();
    focusScan();
  }

  // ---------------------------------------------------------------- the sale

  function buildOrder() {
    const order = { currency: currency(), lines: [], order_discount: 0 };
    if (sale.mode === "total") {
      const cents = parseMoney(sale.total);
      if (cents === null) throw new UiError(sale.total.trim() ? t("err_amount") : t("err_no_amount"));
      order.lines.push({ line_id: "1", sku: "TOTAL", quantity: 1, unit_price: cents, category: null });
      order.total = cents;
      return order;
    }
    sale.lines.forEach((line, index) => {
      const blank = !line.sku.trim() && !line.category.trim() && !line.price.trim();
      if (blank) return;
      const row = index + 1;
      if (!line.sku.trim()) throw new UiError(t("err_line_sku", { row: row }));
      const quantity = parseQuantity(line.quantity);
      if (quantity === null) throw new UiError(t("err_line_quantity", { row: row }));
      const price = parseMoney(line.price);
      if (price === null) throw new UiError(t("err_line_price", { row: row }));
      order.lines.push({
        line_id: String(order.lines.length + 1),
        sku: line.sku.trim(),
        quantity: quantity,
        unit_price: price,
        category: line.category.trim() || null,
      });
    });
    if (!order.lines.length) throw new UiError(t("err_no_lines"));
    // The till's total (the API checks it adds up); it is what today's list shows.
    order.total = order.lines.reduce((sum, line) => sum + line.quantity * line.unit_price, 0);
    if (order.total > MAX_CENTS) throw new UiError(t("err_amount"));
    return order;
  }

  /** The basket's sum as far as it parses (for the display only). */
  function basketSum() {
    if (sale.mode === "total") return parseMoney(sale.total);
    let sum = 0;
    let any = false;
    for (const line of sale.lines) {
      const price = parseMoney(line.price);
      const quantity = parseQuantity(line.quantity);
      if (price === null || quantity === null) continue;
      sum += price * quantity;
      any = true;
    }
    return any ? sum : null;
  }

  /** Rewards from identify (AvailableReward) and from preview (RewardOnBasket) in one shape. */
  function normalizeRewards(list, details) {
    const byCode = {};
    // The reward's terms: in `reward.definition` (the rewards API's RewardView) or flat.
    const terms = (reward) => Object.assign({}, reward, reward.definition || {});
    for (const d of details || []) if (d && d.reward) byCode[terms(d.reward).code] = terms(d.reward);
    return (list || []).map((r) => {
      if (r.reward) {
        const reward = terms(r.reward);
        const asMoney = reward.kind === "points_as_money";
        return {
          code: reward.code,
          name: reward.name,
          kind: reward.kind,
          reward: reward,
          redeemable: Boolean(r.redeemable),
          points: asMoney ? r.points_from : reward.points_cost || r.points_from,
          discount: r.discount || 0,
          refusal: r.refusal || null,
          refusalDetail: r.refusal_detail || null,
        };
      }
      const reward = byCode[r.reward_code] || {};
      return {
        code: r.reward_code,
        name: r.name || reward.name,
        kind: r.kind || reward.kind,
        reward: reward,
        redeemable: Boolean(r.usable !== undefined ? r.usable : r.redeemable),
        points: r.points,
        discount: r.discount || 0,
        refusal: r.refusal || null,
        refusalDetail: r.refusal_detail || null,
      };
    });
  }

  function memberRef() {
    return { value: sale.scan };
  }

  function requireMember() {
    if (!sale.member) throw new UiError(t("err_no_member"));
    if (sale.result) throw new UiError(t("err_sale_done"));
  }

  async function identify(value) {
    const scan = value.trim();
    if (!scan) return;
    const member = await api("POST", "/pos/identify", { member: { value: scan } });
    const sameMember = saleOpen() && member.member_id === sale.member.member_id;
    if (!sameMember) {
      // Points already held or a completion already sent belong to this sale's member.
      if (saleOpen() && sale.sent) throw new UiError(t("err_sale_open"));
      const keep = sale.result ? null : { mode: sale.mode, total: sale.total, lines: sale.lines };
      sale = newSale();
      if (keep) Object.assign(sale, keep);
    }
    sale.scan = scan;
    sale.member = member;
    sale.rewards = normalizeRewards(member.rewards);
    sale.preview = null;
    if (!sale.id) sale.id = newTransactionId();
    persist();
    clearBanner();
    ui.scan.value = "";
    renderBasketInputs();
  }

  async function preview() {
    requireMember();
    const order = buildOrder();
    const res = await api("POST", "/pos/preview", { member: memberRef(), order: order });
    if (res.member) sale.member = res.member;
    sale.preview = res.quote;
    const details = res.member && res.member.rewards;
    sale.rewards = normalizeRewards(res.rewards || details, details);
    persist();
    clearBanner();
  }

  async function redeem(entry, points) {
    requireMember();
    const order = buildOrder();
    const redemption = { reward_code: entry.code, points: points == null ? null : points };
    const signature = ["redeem", sale.redemptions.length, entry.code, points, JSON.stringify(order)].join("|");
    sale.sent = true;
    persist();
    let res;
    try {
      res = await api(
        "POST",
        "/pos/transactions/" + encodeURIComponent(sale.id) + "/redemptions",
        { member: memberRef(), redemption: redemption, order: order },
        { "Idempotency-Key": keyFor(signature) },
      );
    } catch (error) {
      if (!error.network) delete sale.keys[signature];
      persist();
      throw error;
    }
    delete sale.keys[signature];
    res.name = entry.name;
    sale.redemptions.push(res);
    if (res.balance && sale.member) sale.member.balance = res.balance;
    askPointsFor = null;
    persist();
    showInfo(t("info_redeemed", { reward: localized(entry.name, entry.code), discount: formatMoney(res.discount, currency()) }));
    try {
      await preview();
      showInfo(t("info_redeemed", { reward: localized(entry.name, entry.code), discount: formatMoney(res.discount, currency()) }));
    } catch (_e) {
      /* the redemption stands; the preview is refreshed on the next try */
    }
  }

  async function complete() {
    requireMember();
    const order = buildOrder();
    if (!sale.occurredAt) sale.occurredAt = nowWithOffset();
    const payload = { occurred_at: sale.occurredAt, member: memberRef(), order: order };
    const signature = "complete|" + JSON.stringify(payload);
    sale.sent = true;
    persist();
    let res;
    try {
      res = await api(
        "POST",
        "/pos/transactions/" + encodeURIComponent(sale.id) + "/complete",
        payload,
        { "Idempotency-Key": keyFor(signature) },
      );
    } catch (error) {
      // After no answer the same id, time and basket go again on the next try.
      if (!error.network && error.status !== 409 && error.status < 500) {
        sale.occurredAt = null;
        delete sale.keys[signature];
      }
      persist();
      if (error.network) throw new UiError(t("err_network_retry"));
      throw error;
    }
    delete sale.keys[signature];
    sale.result = res;
    if (res.balance && sale.member) sale.member.balance = res.balance;
    persist();
    clearBanner();
    window.scrollTo(0, 0);
  }

  async function voidSale() {
    if (!sale.member && !sale.sent) {
      resetSale();
      return;
    }
    if (!(await confirmDialog(t("confirm_void")))) return;
    if (sale.sent && sale.id) {
      try {
        await api("POST", "/pos/transactions/" + encodeURIComponent(sale.id) + "/void", undefined, {
          "Idempotency-Key": keyFor("void"),
        });
      } catch (error) {
        // Nothing reached the server for this sale: nothing to void there.
        if (error.status === 404) return resetAfterVoid();
        if (!error.network) delete sale.keys.void;
        throw error;
      }
    }
    resetAfterVoid();
  }

  function resetAfterVoid() {
    resetSale();
    showInfo(t("info_voided"));
  }

  function resetSale() {
    sale = newSale();
    askPointsFor = null;
    persist();
    renderBasketInputs();
  }

  function nextCustomer() {
    resetSale();
    clearBanner();
  }

  async function clearMember() {
    if (sale.redemptions.length || sale.sent) {
      await voidSale();
      return;
    }
    resetSale();
    clearBanner();
  }

  // ---------------------------------------------------------------- a new member

  // The cashier enrolls a customer by email (and a name, if they give one); the member
  // completes the profile from the mail the API sends. The answer's card number is identified
  // at once, as if the card had been scanned. An address already known is that member.
  // While the dialog is open the banner shows inside it: the modal dialog covers the page.

  let enrollDone = false;

  function openEnroll() {
    if (sale.member || ui.enroll.open) return;
    clearBanner();
    enrollDone = false;
    // An email typed into the scan field (not found as a member) is the one to enroll.
    const typed = ui.scan.value.trim();
    if (typed.includes("@") && !ui.enrollEmail.value) ui.enrollEmail.value = typed;
    ui.enroll.prepend(ui.banner);
    openDialog(ui.enroll, ui.enrollEmail);
  }

  /** The banner back in its place on the page, above the till. */
  function bannerHome() {
    if (ui.banner.nextElementSibling !== ui.status) ui.status.before(ui.banner);
  }

  async function enroll() {
    const payload = { email: ui.enrollEmail.value.trim() };
    const name = ui.enrollName.value.trim();
    if (name) payload.display_name = name;
    const res = await api("POST", "/pos/members", payload);
    enrollDone = true;
    closeDialog(ui.enroll);
    bannerHome();
    await identify(res.card_number);
    showInfo(t(res.created ? "info_enrolled" : "info_enrolled_existing"));
  }

  function enrollClosed() {
    bannerHome();
    // Cancelled: an error about the address goes with the dialog; nothing stays for the next.
    if (!enrollDone) clearBanner();
    ui.enrollForm.reset();
    // What is left in the scan field (an address typed there) is replaced by the next scan.
    setTimeout(() => {
      focusScan();
      if (document.activeElement === ui.scan) ui.scan.select();
    }, 0);
  }

  // ---------------------------------------------------------------- today's orders, refunds

  async function loadOrders() {
    const res = await api("GET", "/pos/transactions");
    ordersCache = (res && res.transactions) || [];
    return ordersCache;
  }

  async function openOrders() {
    await loadOrders();
    refundTarget = null;
    renderOrders();
    openDialog(ui.orders, ordersFocusTarget());
  }

  async function refundLast() {
    const orders = await loadOrders();
    const done = orders
      .filter((o) => o.status === "completed")
      .sort((a, b) => orderTime(b).localeCompare(orderTime(a)));
    if (!done.length) throw new UiError(t("err_no_orders"));
    refundTarget = done[0];
    renderOrders();
    openDialog(ui.orders, ordersFocusTarget());
  }

  /** The order's total as the API has it, else the sum of its lines. */
  function orderTotal(order) {
    if (order.total != null) return order.total;
    if (!(order.lines || []).length) return null;
    return order.lines.reduce((sum, line) => sum + line.quantity * line.unit_price, 0);
  }

  function orderMoney(order) {
    const total = orderTotal(order);
    return total == null ? "–" : formatMoney(total, order.currency || currency());
  }

  function orderTime(order) {
    return String(order.occurred_at || order.created_at || "");
  }

  async function refund(order, lines) {
    const signature = order.transaction_id + ":" + JSON.stringify(lines);
    if (!pendingRefund || pendingRefund.signature !== signature) {
      pendingRefund = { signature: signature, id: "R-" + stamp() + "-" + randomHex(3).toUpperCase(), key: uuid() };
    }
    const refundId = pendingRefund.id;
    let res;
    try {
      res = await api(
        "POST",
        "/pos/transactions/" + encodeURIComponent(order.transaction_id) + "/refunds",
        { refund_id: refundId, lines: lines },
        { "Idempotency-Key": pendingRefund.key },
      );
    } catch (error) {
      if (!error.network) pendingRefund = null;
      throw error;
    }
    pendingRefund = null;
    closeDialog(ui.orders);
    showInfo(
      t("info_refunded", {
        reversed: formatPoints(res.points_reversed),
        returned: formatPoints(res.points_returned),
        balance: formatPoints(res.balance ? res.balance.available : 0),
      }),
    );
  }

  function selectedRefundLines() {
    const lines = [];
    let bad = false;
    document.querySelectorAll("#refund-lines input").forEach((input) => {
      const raw = input.value.trim();
      if (!raw || raw === "0") return;
      const quantity = parseQuantity(raw);
      if (quantity === null || quantity > Number(input.dataset.max)) bad = true;
      else lines.push({ line_id: input.dataset.line, quantity: quantity });
    });
    if (bad) throw new UiError(t("err_refund_quantity"));
    if (!lines.length) throw new UiError(t("err_refund_nothing"));
    return lines;
  }

  // ---------------------------------------------------------------- dialogs

  function openDialog(dialog, focusTarget) {
    if (!dialog.open) dialog.showModal();
    const first = focusTarget || dialog.querySelector("button");
    if (first) first.focus();
  }

  function ordersFocusTarget() {
    if (refundTarget) return document.querySelector("#refund-lines input") || $("btn-refund-all");
    return document.querySelector("#orders-body button") || ui.orders.querySelector("[data-close]");
  }

  function closeDialog(dialog) {
    if (dialog.open) dialog.close();
  }

  let confirmResolve = null;
  function confirmDialog(message) {
    $("confirm-text").textContent = message;
    openDialog(ui.confirm, $("confirm-no"));
    return new Promise((resolve) => {
      confirmResolve = resolve;
    });
  }

  function answerConfirm(yes) {
    const resolve = confirmResolve;
    confirmResolve = null;
    closeDialog(ui.confirm);
    if (resolve) resolve(yes);
  }

  // ---------------------------------------------------------------- camera scanning

  // A second way to scan, for tills without a scanner: the camera, in any browser that has
  // getUserMedia on a secure origin (HTTPS or localhost). The browser's BarcodeDetector decodes
  // where there is one (Chrome on Android, macOS, ChromeOS); everywhere else (Chrome and Edge on
  // Windows and Linux, Firefox, Safari) the vendored jsQR (static/vendor/, loaded on first use)
  // reads a downscaled frame of the video drawn on a canvas. A code read goes the way of a typed
  // scan and Enter.

  const QR_DECODER_URL = body.dataset.qrDecoder || "";
  /** A frame is decoded this long after the last one finished: the till stays responsive. */
  const SCAN_INTERVAL_MS = 200;
  /** jsQR reads frames at most this many pixels on their long side (a wallet QR has 21 modules). */
  const SCAN_SIZE = 640;
  const BARCODE_FORMATS = ["qr_code", "code_128", "code_39", "ean_13", "ean_8", "upc_a", "data_matrix", "pdf417", "aztec"];
  /** Errors in a row from BarcodeDetector before jsQR takes over. */
  const DETECTOR_FAILURES = 5;

  let cameraStream = null;
  let cameraTimer = null;
  let jsQRLoading = null;

  function cameraAvailable() {
    return window.isSecureContext && Boolean(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
  }

  /** The camera button only on devices that have a camera (most desktop tills have none). */
  async function checkForCamera() {
    let devices = [];
    try {
      devices = await navigator.mediaDevices.enumerateDevices();
    } catch (_e) {
      devices = [];
    }
    // A browser that lists nothing before the permission is given keeps the button.
    show(ui.camera, !devices.length || devices.some((device) => device.kind === "videoinput"));
  }

  /** The banner text for getUserMedia's refusal: permission, no camera, camera busy. */
  function cameraErrorText(error) {
    const name = (error && error.name) || "";
    if (name === "NotAllowedError" || name === "SecurityError" || name === "PermissionDeniedError") {
      return t("err_camera_denied");
    }
    if (name === "NotFoundError" || name === "DevicesNotFoundError" || name === "OverconstrainedError") {
      return t("err_camera_missing");
    }
    if (name === "NotReadableError" || name === "TrackStartError" || name === "AbortError") return t("err_camera_busy");
    return t("err_camera");
  }

  /** A decoder from BarcodeDetector when the browser has one that reads QR codes, else null. */
  async function nativeDecoder() {
    if (!("BarcodeDetector" in window)) return null;
    let formats = BARCODE_FORMATS;
    try {
      const supported = await window.BarcodeDetector.getSupportedFormats();
      formats = BARCODE_FORMATS.filter((format) => supported.includes(format));
    } catch (_e) {
      /* older implementations: ask for the list we want */
    }
    if (!formats.includes("qr_code")) return null;
    let detector;
    try {
      detector = new window.BarcodeDetector({ formats: formats });
    } catch (_e) {
      return null;
    }
    return async (video) => {
      const codes = await detector.detect(video);
      return codes.length && codes[0].rawValue ? codes[0].rawValue : null;
    };
  }

  /** The vendored jsQR, loaded once from this server (script-src 'self'). */
  function loadJsQR() {
    if (typeof window.jsQR === "function") return Promise.resolve(window.jsQR);
    if (!jsQRLoading) {
      jsQRLoading = new Promise((resolve, reject) => {
        const script = document.createElement("script");
        script.src = QR_DECODER_URL;
        script.async = true;
        script.addEventListener("load", () => {
          if (typeof window.jsQR === "function") resolve(window.jsQR);
          else reject(new Error("jsQR did not load"));
        });
        script.addEventListener("error", () => {
          script.remove();
          reject(new Error("jsQR did not load"));
        });
        document.head.append(script);
      }).catch((error) => {
        jsQRLoading = null; // the next try loads it again
        throw error;
      });
    }
    return jsQRLoading;
  }

  /** A decoder from jsQR: the video's current frame, downscaled on a canvas, in one pass. */
  async function jsQRDecoder() {
    const jsQR = await loadJsQR();
    const canvas = document.createElement("canvas");
    const context = canvas.getContext("2d", { willReadFrequently: true });
    if (!context) throw new Error("no 2d canvas");
    return async (video) => {
      const width = video.videoWidth;
      const height = video.videoHeight;
      if (!width || !height) return null;
      const scale = Math.min(1, SCAN_SIZE / Math.max(width, height));
      const w = Math.max(1, Math.round(width * scale));
      const h = Math.max(1, Math.round(height * scale));
      if (canvas.width !== w || canvas.height !== h) {
        canvas.width = w;
        canvas.height = h;
      }
      context.drawImage(video, 0, 0, w, h);
      // Dark modules on a light ground, as wallets and printed cards show them: one pass, not two.
      const code = jsQR(context.getImageData(0, 0, w, h).data, w, h, { inversionAttempts: "dontInvert" });
      return code && code.data ? code.data : null;
    };
  }

  async function startCamera() {
    if (!cameraAvailable()) throw new UiError(t("err_camera"));
    // The camera first, in the click's task (the permission prompt); the decoder meanwhile.
    const [media, native] = await Promise.allSettled([
      navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false }),
      nativeDecoder(),
    ]);
    if (media.status === "rejected") throw new UiError(cameraErrorText(media.reason));
    const stream = media.value;
    let decode = native.status === "fulfilled" ? native.value : null;
    let usesNative = Boolean(decode);
    if (!decode) {
      try {
        decode = await jsQRDecoder();
      } catch (_e) {
        stream.getTracks().forEach((track) => track.stop());
        throw new UiError(t("err_camera_load"));
      }
    }
    if (document.hidden) {
      // The cashier left the page while the decoder loaded: no camera behind their back.
      stream.getTracks().forEach((track) => track.stop());
      return;
    }
    cameraStream = stream;
    ui.video.srcObject = stream;
    openDialog(ui.cameraDialog, ui.cameraDialog.querySelector("[data-close]"));
    await ui.video.play().catch(() => null);
    let failures = 0;
    const tick = async () => {
      cameraTimer = null;
      if (cameraStream !== stream) return; // closed meanwhile
      let value = null;
      // Not while an action runs: the code read would be dropped by it (one action at a time).
      if (!busy && ui.video.readyState >= 2) {
        try {
          value = await decode(ui.video);
          failures = 0;
        } catch (_e) {
          // A frame that is not ready yet; a BarcodeDetector that keeps failing gives way to jsQR.
          failures += 1;
          if (usesNative && failures >= DETECTOR_FAILURES) {
            usesNative = false;
            decode = await jsQRDecoder().catch(() => decode);
          }
        }
      }
      if (cameraStream !== stream) return;
      if (value) {
        stopCamera();
        ui.scan.value = value;
        submitScan();
        return;
      }
      cameraTimer = setTimeout(tick, SCAN_INTERVAL_MS);
    };
    cameraTimer = setTimeout(tick, 0); // after this action has ended
  }

  function stopCamera() {
    if (cameraTimer) clearTimeout(cameraTimer);
    cameraTimer = null;
    if (cameraStream) cameraStream.getTracks().forEach((track) => track.stop());
    cameraStream = null;
    ui.video.srcObject = null;
    closeDialog(ui.cameraDialog);
  }

  // ---------------------------------------------------------------- rendering

  function render() {
    if (terminal) {
      // The till first: a narrow header cuts the merchant's name, not where the till is.
      const parts = [terminal.name || terminal.terminal_code, terminal.location, terminal.merchant_name];
      ui.where.textContent = parts.filter(Boolean).join(" · ");
      ui.where.title = ui.where.textContent;
    }
    $("total-currency").textContent = SYMBOLS[currency()] || currency();
    renderMember();
    renderRewards();
    renderSums();
    renderPreview();
    renderResult();
    const open = saleOpen();
    $("btn-preview").disabled = !open;
    $("btn-complete").disabled = !open;
    $("btn-void").disabled = !open;
    show($("sale-actions"), !sale.result);
    $("sale-id").textContent = sale.id && !sale.result ? t("sale_id", { id: sale.id }) : "";
    const locked = Boolean(sale.result);
    ui.total.disabled = locked;
    document.querySelectorAll("#lines-body input, #lines-body button, #btn-add-line, .tab").forEach((node) => {
      node.disabled = locked;
    });
  }

  function renderMember() {
    const m = sale.member;
    show(ui.member, Boolean(m));
    show(ui.noMember, !m);
    if (!m) return;
    $("member-name").textContent = m.display_name || t("member_unnamed");
    const tier = m.tier ? localized(m.tier.name, m.tier.code) : "";
    $("member-tier").textContent = tier;
    show($("member-tier"), Boolean(tier));
    const balance = m.balance || { posted: 0, held: 0, available: 0 };
    $("member-available").textContent = formatPoints(balance.available) + " " + t("points_unit");
    const by = m.identified_by ? tCode("by_" + m.identified_by, m.identified_by) : "";
    $("member-detail").textContent =
      t("balance_detail", { posted: formatPoints(balance.posted), held: formatPoints(balance.held) }) +
      (by ? " · " + by : "");
  }

  function renderRewards() {
    const list = (sale.rewards || []).slice();
    const visible = Boolean(sale.member) && !sale.result && list.length > 0;
    show(ui.rewardsBox, visible);
    ui.rewards.replaceChildren();
    if (!visible) return;
    list.sort((a, b) => Number(b.redeemable) - Number(a.redeemable));
    for (const entry of list) {
      const asMoney = entry.kind === "points_as_money";
      const cost = asMoney
        ? t("reward_from", { points: formatPoints(entry.points) })
        : formatPoints(entry.points) + " " + t("points_unit");
      const item = el(
        "li",
        { class: "reward" + (entry.redeemable ? "" : " reward-off") },
        el(
          "div",
          { class: "reward-text" },
          el("span", { class: "reward-name", text: localized(entry.name, entry.code) }),
          el("span", { class: "reward-cost", text: cost }),
          entry.redeemable && entry.discount
            ? el("span", { class: "reward-discount", text: "−" + formatMoney(entry.discount, currency()) })
            : null,
          entry.redeemable
            ? null
            : el("span", {
                class: "reward-refusal",
                text: tCode("refusal_" + entry.refusal, entry.refusalDetail || entry.refusal || ""),
              }),
        ),
      );
      if (entry.redeemable && asMoney && askPointsFor === entry.code) {
        item.append(pointsForm(entry));
      } else if (entry.redeemable) {
        item.append(
          el("button", {
            type: "button",
            class: "btn btn-small btn-primary",
            text: t("redeem"),
            onclick: () => {
              if (asMoney) {
                askPointsFor = entry.code;
                renderRewards();
                const input = ui.rewards.querySelector("input");
                if (input) input.focus();
              } else {
                action(() => redeem(entry, null));
              }
            },
          }),
        );
      }
      ui.rewards.append(item);
    }
  }

  function pointsForm(entry) {
    const reward = entry.reward || {};
    const hintParts = [t("reward_from", { points: formatPoints(entry.points) })];
    if (reward.max_points) hintParts.push(t("reward_max", { points: formatPoints(reward.max_points) }));
    if (reward.points_per_step && reward.money_per_step) {
      hintParts.push(
        t("reward_step", { points: formatPoints(reward.points_per_step), money: formatMoney(reward.money_per_step, currency()) }),
      );
    }
    const inputId = "points-" + slug(entry.code);
    const input = el("input", {
      id: inputId,
      type: "text",
      inputmode: "numeric",
      autocomplete: "off",
      class: "points-input",
      value: String(entry.points || ""),
    });
    const form = el(
      "form",
      { class: "points-form" },
      el("label", { for: inputId, text: t("points_to_use") }),
      input,
      el("button", { type: "submit", class: "btn btn-small btn-primary", text: t("redeem") }),
      el("button", {
        type: "button",
        class: "btn btn-small btn-icon",
        text: "×",
        "aria-label": t("cancel"),
        title: t("cancel"),
        onclick: () => {
          askPointsFor = null;
          renderRewards();
          focusScan();
        },
      }),
      el("span", { class: "muted points-hint", text: hintParts.join(" · ") }),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const raw = input.value.replace(/[.\s\u00a0]/g, "");
      const points = /^\d{1,12}$/.test(raw) ? parseInt(raw, 10) : 0;
      if (points < 1) {
        showError(t("err_points"));
        input.focus();
        return;
      }
      action(() => redeem(entry, points));
    });
    return form;
  }

  function renderSums() {
    const sum = basketSum();
    const discount = sale.redemptions.reduce((acc, r) => acc + (Number(r.discount) || 0), 0);
    $("sum-gross").textContent = sum === null ? "–" : formatMoney(sum, currency());
    show($("sum-discount-label"), discount > 0);
    show($("sum-discount"), discount > 0);
    $("sum-discount").textContent = "−" + formatMoney(discount, currency());
    $("sum-pay").textContent = sum === null ? "–" : formatMoney(Math.max(0, sum - discount), currency());
    const list = $("redemptions");
    list.replaceChildren();
    show(list, sale.redemptions.length > 0);
    for (const r of sale.redemptions) {
      const until = r.hold_expires_at && !sale.result ? " · " + t("held_until", { time: formatTime(r.hold_expires_at) }) : "";
      list.append(
        el(
          "li",
          null,
          el("strong", { text: localized(r.name, r.reward_code) }),
          " " + t("redemption_line", { points: formatPoints(r.points), discount: formatMoney(r.discount, currency()) }) + until,
        ),
      );
    }
  }

  function renderPreview() {
    const q = sale.preview;
    show(ui.preview, Boolean(q) && !sale.result);
    if (!q) return;
    $("preview-points").textContent = "+" + formatPoints(q.points) + " " + t("points_unit");
    const rows = $("preview-lines");
    rows.replaceChildren();
    for (const line of q.lines || []) {
      const multiplier =
        line.multiplier != null && String(line.multiplier) !== "1"
          ? " ×" + (LANG === "de" ? String(line.multiplier).replace(".", ",") : String(line.multiplier))
          : "";
      rows.append(
        el(
          "tr",
          null,
          el("td", { text: localized(line.name, line.code) + multiplier }),
          el("td", { class: "num", text: (line.points >= 0 ? "+" : "−") + formatPoints(Math.abs(line.points)) }),
        ),
      );
    }
    if (!(q.lines || []).length) rows.append(el("tr", null, el("td", { colspan: "2", class: "muted", text: t("preview_none") })));
  }

  function renderResult() {
    const r = sale.result;
    show(ui.result, Boolean(r));
    if (!r) return;
    $("result-points").textContent = "+" + formatPoints(r.points_earned) + " " + t("points_unit");
    $("result-balance").textContent = formatPoints(r.balance ? r.balance.available : 0) + " " + t("points_unit");
    const names = {};
    for (const x of sale.rewards || []) names[x.code] = localized(x.name, x.code);
    for (const x of sale.redemptions) names[x.reward_code] = localized(x.name, x.reward_code);
    const redeemed = (r.redeemed || [])
      .map(
        (x) =>
          (names[x.reward_code] || x.reward_code) +
          " " +
          t("redemption_line", { points: formatPoints(x.points), discount: formatMoney(x.discount, currency()) }),
      )
      .join("; ");
    $("result-redeemed").textContent = (redeemed ? t("redeemed") + " " + redeemed + " · " : "") + t("sale_id", { id: r.transaction_id || sale.id });
    const changes = r.tier_changes || [];
    show($("result-tier"), changes.length > 0);
    const tier = sale.member && sale.member.tier;
    const tierName = (code) => (code && tier && tier.code === code ? localized(tier.name, code) : code || "–");
    $("result-tier").textContent = changes
      .map((c) => t("tier_change", { before: tierName(c.before), after: tierName(c.after) }))
      .join(" ");
  }

  const fieldLabels = {
    sku: t("sku"),
    category: t("category"),
    quantity: t("quantity"),
    price: t("unit_price"),
  };

  /** The basket inputs are built on structural changes only, so typing is never disturbed. */
  function renderBasketInputs() {
    const totalMode = sale.mode === "total";
    show($("basket-total"), totalMode);
    show($("basket-lines"), !totalMode);
    $("mode-total").setAttribute("aria-pressed", String(totalMode));
    $("mode-lines").setAttribute("aria-pressed", String(!totalMode));
    // Amounts typed under the other language ("4.50") show in this one's format ("4,50").
    const normal = (text) => (parseMoney(text) === null ? text : formatAmount(parseMoney(text)));
    sale.total = normal(sale.total);
    for (const line of sale.lines) line.price = normal(line.price);
    ui.total.value = sale.total;
    const rows = ui.linesBody;
    rows.replaceChildren();
    sale.lines.forEach((line, index) => {
      const row = index + 1;
      const cell = (field, attrs) => {
        const input = el(
          "input",
          Object.assign(
            {
              type: "text",
              autocomplete: "off",
              spellcheck: "false",
              "aria-label": fieldLabels[field] + " " + row,
              value: line[field],
            },
            attrs,
          ),
        );
        input.addEventListener("input", () => {
          line[field] = input.value;
          basketChanged();
        });
        if (field === "price") {
          input.addEventListener("blur", () => {
            const cents = parseMoney(input.value);
            if (cents !== null) input.value = line.price = formatAmount(cents);
            persist();
          });
        }
        if (field === "quantity") input.addEventListener("focus", () => input.select());
        input.addEventListener("keydown", (event) => {
          if (event.key === "Enter") {
            event.preventDefault();
            action(preview);
          }
        });
        return el("td", attrs && attrs.class === "num" ? { class: "num" } : null, input);
      };
      rows.append(
        el(
          "tr",
          null,
          cell("sku", { class: "sku", placeholder: fieldLabels.sku }),
          cell("category", { class: "cat", placeholder: fieldLabels.category }),
          cell("quantity", { class: "num", inputmode: "numeric" }),
          cell("price", { class: "num", inputmode: "decimal", placeholder: formatAmount(0) }),
          el(
            "td",
            null,
            el("button", {
              type: "button",
              class: "btn btn-small btn-icon",
              "aria-label": t("remove_line") + " " + row,
              text: "×",
              onclick: () => {
                sale.lines.splice(index, 1);
                if (!sale.lines.length) sale.lines.push(emptyLine());
                basketChanged();
                renderBasketInputs();
                focusScan();
              },
            }),
          ),
        ),
      );
    });
  }

  function basketChanged() {
    sale.preview = null;
    sale.occurredAt = null;
    persist();
    renderSums();
    renderPreview();
  }

  function renderOrders() {
    const list = $("orders-body");
    list.replaceChildren();
    show($("orders-view"), !refundTarget);
    show($("refund-view"), Boolean(refundTarget));
    show($("orders-empty"), !ordersCache.length);
    const sorted = ordersCache.slice().sort((a, b) => orderTime(b).localeCompare(orderTime(a)));
    for (const order of sorted) {
      const points =
        (order.points_earned ? "+" + formatPoints(order.points_earned) : "") +
        (order.points_redeemed ? " −" + formatPoints(order.points_redeemed) : "");
      const returned = order.points_returned_by_refunds
        ? " · " + t("refunded_points", { points: formatPoints(order.points_returned_by_refunds) })
        : "";
      list.append(
        el(
          "tr",
          null,
          el("td", { text: formatTime(orderTime(order)) }),
          el("td", { text: order.display_name || order.member_id || "–" }),
          el("td", { class: "num", text: orderMoney(order) }),
          el("td", { class: "num", text: points.trim() || "0" }),
          el("td", { text: tCode("status_" + order.status, order.status) + returned }),
          el(
            "td",
            null,
            order.status === "completed"
              ? el("button", {
                  type: "button",
                  class: "btn btn-small",
                  text: t("refund"),
                  onclick: () => {
                    refundTarget = order;
                    renderOrders();
                    const first = document.querySelector("#refund-lines input");
                    if (first) first.focus();
                  },
                })
              : null,
          ),
        ),
      );
    }
    if (!refundTarget) return;
    const order = refundTarget;
    $("refund-title").textContent = t("refund_title", {
      id: order.transaction_id,
      total: orderMoney(order),
      customer: order.display_name || order.member_id || "–",
    });
    const rows = $("refund-lines");
    rows.replaceChildren();
    for (const line of order.lines || []) {
      const inputId = "refund-" + slug(line.line_id);
      rows.append(
        el(
          "tr",
          null,
          el("td", null, el("label", { for: inputId, text: line.sku })),
          el("td", { class: "num", text: String(line.quantity) }),
          el("td", { class: "num", text: formatMoney(line.unit_price, order.currency || currency()) }),
          el(
            "td",
            { class: "num" },
            el("input", {
              id: inputId,
              type: "text",
              inputmode: "numeric",
              autocomplete: "off",
              class: "qty",
              value: "0",
              "data-line": line.line_id,
              "data-max": String(line.quantity),
              onfocus: (event) => event.target.select(),
            }),
          ),
        ),
      );
    }
  }

  // ---------------------------------------------------------------- wiring

  $("form-key").addEventListener("submit", (event) => {
    event.preventDefault();
    action(() => signInWithKey($("login-key").value), { keepFocus: true });
  });

  $("form-staff").addEventListener("submit", (event) => {
    event.preventDefault();
    action(
      () => signInAsStaff($("login-email").value, $("login-password").value, $("login-terminal").value),
      { keepFocus: true },
    );
  });

  /** What Enter in the scan field does (a keyboard-wedge scanner sends one); the camera too. */
  function submitScan() {
    const value = ui.scan.value;
    action(() => identify(value), { selectScan: true });
  }

  $("form-scan").addEventListener("submit", (event) => {
    event.preventDefault();
    submitScan();
  });

  ui.scan.addEventListener("blur", () => {
    // Back to the scan field when the focus went nowhere (a click on the page, a closed
    // dialog); not when the cashier moved on to another field or a button with the keyboard.
    setTimeout(() => {
      const active = document.activeElement;
      if (!active || active === document.body || active === document.documentElement) focusScan();
    }, 0);
  });
  window.addEventListener("focus", () => setTimeout(focusScan, 0));
  document.addEventListener("click", (event) => {
    if (event.target === document.body || event.target.closest(".till") === null) return;
    if (!isTextEntry(event.target) && !event.target.closest("button, a, label, input, select, textarea")) {
      setTimeout(focusScan, 0);
    }
  });

  ui.total.addEventListener("input", () => {
    sale.total = ui.total.value;
    basketChanged();
  });
  ui.total.addEventListener("blur", () => {
    const cents = parseMoney(ui.total.value);
    if (cents !== null && !ui.total.disabled) ui.total.value = sale.total = formatAmount(cents);
    persist();
  });
  ui.total.placeholder = formatAmount(0);
  ui.total.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      action(preview);
    }
  });

  $("mode-total").addEventListener("click", () => {
    sale.mode = "total";
    basketChanged();
    renderBasketInputs();
    ui.total.focus();
  });
  $("mode-lines").addEventListener("click", () => {
    sale.mode = "lines";
    basketChanged();
    renderBasketInputs();
    const first = ui.linesBody.querySelector("input");
    if (first) first.focus();
  });
  $("btn-add-line").addEventListener("click", () => {
    sale.lines.push(emptyLine());
    basketChanged();
    renderBasketInputs();
    const inputs = ui.linesBody.querySelectorAll("tr:last-child input");
    if (inputs.length) inputs[0].focus();
  });

  $("btn-preview").addEventListener("click", () => action(preview));
  $("btn-complete").addEventListener("click", () => action(complete));
  $("btn-void").addEventListener("click", () => action(voidSale));
  $("btn-next").addEventListener("click", () => action(async () => nextCustomer()));
  $("btn-clear-member").addEventListener("click", () => action(clearMember));
  $("btn-orders").addEventListener("click", () => action(openOrders, { keepFocus: true }));
  $("btn-refund-last").addEventListener("click", () => action(refundLast, { keepFocus: true }));
  $("btn-signout").addEventListener("click", () => action(signOut, { keepFocus: true }));
  $("banner-close").addEventListener("click", () => {
    clearBanner();
    if (ui.enroll.open) ui.enrollEmail.focus();
    else focusScan();
  });

  $("btn-enroll").addEventListener("click", openEnroll);
  ui.enrollForm.addEventListener("submit", (event) => {
    event.preventDefault();
    action(enroll).then(() => {
      // Refused (an address that is none): the cashier corrects it where it was typed.
      if (ui.enroll.open) {
        ui.enrollEmail.focus();
        ui.enrollEmail.select();
      }
    });
  });

  $("btn-refund-back").addEventListener("click", () => {
    refundTarget = null;
    renderOrders();
    const target = ordersFocusTarget();
    if (target) target.focus();
  });
  $("btn-refund-all").addEventListener("click", () => {
    const order = refundTarget;
    if (!order) return;
    action(async () => {
      if (await confirmDialog(t("confirm_refund_all", { total: orderMoney(order) }))) {
        await refund(order, []);
      }
    });
  });
  $("refund-view").addEventListener("submit", (event) => {
    event.preventDefault();
    const order = refundTarget;
    if (!order) return;
    action(async () => refund(order, selectedRefundLines()), { keepFocus: true });
  });

  $("confirm-yes").addEventListener("click", () => answerConfirm(true));
  $("confirm-no").addEventListener("click", () => answerConfirm(false));
  ui.confirm.addEventListener("cancel", () => answerConfirm(false));
  ui.cameraDialog.addEventListener("close", stopCamera);
  document.querySelectorAll("dialog").forEach((dialog) => {
    dialog.addEventListener("close", () => {
      if (dialog === ui.orders) refundTarget = null;
      if (dialog === ui.enroll) enrollClosed();
      setTimeout(focusScan, 0);
    });
    dialog.querySelectorAll("[data-close]").forEach((button) => {
      button.addEventListener("click", () => closeDialog(dialog));
    });
  });

  if (cameraAvailable()) {
    show(ui.camera, true);
    checkForCamera();
    if (typeof navigator.mediaDevices.addEventListener === "function") {
      navigator.mediaDevices.addEventListener("devicechange", checkForCamera);
    }
    ui.camera.addEventListener("click", () => action(startCamera, { keepFocus: true }));
    // No camera running behind the cashier's back: another tab or app closes it.
    document.addEventListener("visibilitychange", () => {
      if (document.hidden) stopCamera();
    });
  }

  // Function keys, and a keyboard-wedge scanner typing while a button has the focus.
  document.addEventListener("keydown", (event) => {
    if (ui.till.hidden) return;
    if (event.key === "F2" && !anyDialogOpen()) {
      event.preventDefault();
      const target = sale.mode === "total" ? ui.total : ui.linesBody.querySelector("input");
      if (target && !target.disabled) target.focus();
      return;
    }
    if (event.key === "F4" && !anyDialogOpen()) {
      event.preventDefault();
      if (saleOpen()) action(preview);
      return;
    }
    if (event.key === "F9" && !anyDialogOpen()) {
      event.preventDefault();
      if (saleOpen()) action(complete);
      return;
    }
    if (event.key === "Escape" && !anyDialogOpen() && isTextEntry(document.activeElement) && document.activeElement !== ui.scan) {
      if (askPointsFor) {
        askPointsFor = null;
        renderRewards();
      }
      focusScan();
      return;
    }
    const printable = event.key.length === 1 && event.key !== " " && !event.ctrlKey && !event.metaKey && !event.altKey;
    if (printable && !anyDialogOpen() && !isTextEntry(document.activeElement)) focusScan();
  });

  // ---------------------------------------------------------------- start

  async function start() {
    if (!auth) {
      enterLogin();
      return;
    }
    enterTill();
    await action(async () => {
      try {
        await checkTerminal();
      } catch (error) {
        if (error.status === 401 || error.status === 403) {
          auth = null;
          save(localStorage, AUTH_KEY, null);
          enterLogin();
        }
        throw error;
      }
    });
  }

  start();
})();
