// The program pages: forms that change a program, a rule-set draft or a reward through the
// admin API, the tier editor, the card colours' contrast, and the simulator.
//
// <form data-pp-api="PUT /api/v1/admin/.../earning-rules/{code}" data-pp-base="{...json...}"
//       data-pp-then="reload" data-pp-confirm="Sure?">
//   The body starts as data-pp-base (the entry as it is, so that fields the form does not show
//   survive) and each named field overwrites its path (name="a.b" nests); an empty optional
//   field removes its path. {name} in the path is the body's value. data-pp-then: "reload",
//   or a path to go to, with {name} taken from the API's answer.
// Field types (data-type): int, money (decimal text -> minor units), decimal (kept as text),
// micros (decimal text -> millionths), list (comma separated), bool, datetime (a
// datetime-local in the browser's time zone -> UTC; data-utc fills it), time, weekday
// (checkboxes collected into "weekdays"), json, json-body (the whole body), threshold
// (points, or money when the tier basis is spend).
// data-pp-collect="tiers" | "caps": bodies the fields cannot express by name alone.
(function () {
  "use strict";
  const api = window.AdminApi;

  class InputError extends Error {}

  // -- values -------------------------------------------------------------------------------

  function labelOf(field) {
    const label = field.closest("label");
    const text = field.getAttribute("aria-label") || (label ? label.firstChild.textContent : field.name);
    return text.trim();
  }

  function decimal(field, raw) {
    const normal = raw.includes(",") && !raw.includes(".") ? raw.replace(",", ".") : raw;
    if (!/^\d+(\.\d+)?$/.test(normal)) { throw new InputError(labelOf(field) + ": " + raw); }
    return normal;
  }

  function micros(field, raw) {
    const [whole, fraction = ""] = decimal(field, raw).split(".");
    if (fraction.length > 6) { throw new InputError(labelOf(field) + ": " + raw); }
    return parseInt(whole, 10) * 1000000 + parseInt((fraction + "000000").slice(0, 6), 10);
  }

  function integer(field, raw) {
    if (!/^-?\d+$/.test(raw)) { throw new InputError(labelOf(field) + ": " + raw); }
    return parseInt(raw, 10);
  }

  function money(field, raw) {
    try {
      return api.money(raw);
    } catch (error) {
      throw new InputError(labelOf(field) + ": " + raw);
    }
  }

  function localInput(iso) {
    const at = new Date(iso);
    const pad = function (n) { return String(n).padStart(2, "0"); };
    return at.getFullYear() + "-" + pad(at.getMonth() + 1) + "-" + pad(at.getDate()) +
      "T" + pad(at.getHours()) + ":" + pad(at.getMinutes());
  }

  function instant(field, raw) {
    // A field left as the page filled it keeps its exact stored instant (seconds included).
    if (field.dataset.utc && field.dataset.filled === field.value) { return field.dataset.utc; }
    const at = new Date(raw);
    if (Number.isNaN(at.getTime())) { throw new InputError(labelOf(field) + ": " + raw); }
    return at.toISOString();
  }

  function list(raw) {
    return raw.split(",").map(function (item) { return item.trim(); }).filter(Boolean);
  }

  function basisOf(form) {
    const select = form.querySelector("[data-pp-basis]");
    return select ? select.value : "points";
  }

  function valueOf(field, form) {
    const type = field.dataset.type || "text";
    if (type === "bool") { return field.checked; }
    const raw = field.value.trim();
    if (raw === "") { return field.dataset.keepEmpty !== undefined ? "" : undefined; }
    switch (type) {
      case "int": return integer(field, raw);
      case "money": return money(field, raw);
      case "decimal": return decimal(field, raw);
      case "micros": return micros(field, raw);
      case "list": return list(raw);
      case "datetime": return instant(field, raw);
      case "time": return raw.length === 5 ? raw + ":00" : raw;
      case "json":
        try { return JSON.parse(raw); } catch (error) { throw new InputError(labelOf(field) + ": " + error.message); }
      case "threshold": return basisOf(form) === "spend" ? money(field, raw) : integer(field, raw);
      default: return field.value;
    }
  }

  function put(target, path, item) {
    const parts = path.split(".");
    let node = target;
    parts.slice(0, -1).forEach(function (part) {
      if (typeof node[part] !== "object" || node[part] === null) { node[part] = {}; }
      node = node[part];
    });
    node[parts[parts.length - 1]] = item;
  }

  function remove(target, path) {
    const parts = path.split(".");
    const trail = [target];
    for (const part of parts.slice(0, -1)) {
      const next = trail[trail.length - 1][part];
      if (typeof next !== "object" || next === null) { return; }
      trail.push(next);
    }
    delete trail[trail.length - 1][parts[parts.length - 1]];
    // An object left empty goes too ("hours" without start and end means all day).
    for (let depth = trail.length - 1; depth > 0; depth -= 1) {
      if (Object.keys(trail[depth]).length) { break; }
      delete trail[depth - 1][parts[depth - 1]];
    }
  }

  // -- bodies -------------------------------------------------------------------------------

  function fieldsOf(form) {
    return Array.from(form.elements).filter(function (field) {
      return field.name && !field.disabled && field.type !== "submit" && field.type !== "button" &&
        !field.closest("[hidden]") && !field.closest("[data-pp-levels]");
    });
  }

  function collect(form) {
    let body = form.dataset.ppBase ? JSON.parse(form.dataset.ppBase) : {};
    let weekdays = null;
    for (const field of fieldsOf(form)) {
      const type = field.dataset.type || "text";
      if (type === "json-body") {
        try { body = JSON.parse(field.value); } catch (error) { throw new InputError(error.message); }
        continue;
      }
      if (type === "weekday") {
        weekdays = weekdays || [];
        if (field.checked) { weekdays.push(parseInt(field.value, 10)); }
        continue;
      }
      if (field.dataset.cap !== undefined) { continue; }
      if (field.type === "radio" && !field.checked) { continue; }
      const item = valueOf(field, form);
      if (item === undefined) { remove(body, field.name); } else { put(body, field.name, item); }
    }
    if (weekdays !== null) { body.weekdays = weekdays; }
    if (form.dataset.ppCollect === "tiers") { body.levels = levels(form); }
    if (form.dataset.ppCollect === "caps") { body = caps(form); }
    return body;
  }

  function levels(form) {
    return Array.from(form.querySelectorAll("[data-pp-levels] [data-pp-level]")).map(function (row) {
      const level = {};
      row.querySelectorAll("input[name]").forEach(function (field) {
        const item = valueOf(field, form);
        if (item !== undefined) { put(level, field.name, item); }
      });
      return level;
    });
  }

  function caps(form) {
    const found = [];
    form.querySelectorAll("[data-cap]").forEach(function (field) {
      const raw = field.value.trim();
      if (raw !== "") { found.push({period: field.dataset.cap, max_points: integer(field, raw)}); }
    });
    return found;
  }

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (_, name) {
      return encodeURIComponent(values && values[name] !== undefined ? values[name] : "");
    });
  }

  // -- sending ------------------------------------------------------------------------------

  function showProblem(container, error) {
    api.showError(container, error);
    const slot = container.querySelector(".form-error");
    // What stops a draft (problems) and what the body decoder refused (errors), one a line.
    const problem = error.problem || {};
    const lines = [].concat(
      (Array.isArray(problem.problems) ? problem.problems : []).map(function (found) {
        return (found.code ? found.code + ": " : "") + found.detail;
      }),
      (Array.isArray(problem.errors) ? problem.errors : []).map(function (found) {
        return (found.key ? found.key + ": " : "") + found.message;
      }),
    );
    if (slot && lines.length) {
      const items = document.createElement("ul");
      lines.forEach(function (line) {
        const item = document.createElement("li");
        item.textContent = line;
        items.append(item);
      });
      slot.append(items);
    }
  }

  function after(then, answer) {
    if (!then || then === "reload") { window.location.reload(); return; }
    window.location.assign(fill(then, answer));
  }

  async function send(element, container, body, busy) {
    if (element.dataset.ppConfirm && !window.confirm(element.dataset.ppConfirm)) { return; }
    const spec = element.dataset.ppApi;
    const space = spec.indexOf(" ");
    const method = spec.slice(0, space);
    const path = fill(spec.slice(space + 1), body);
    const slot = container.querySelector(".form-error");
    if (slot) { slot.hidden = true; }
    busy.disabled = true;
    try {
      const answer = await api.call(method, path, body);
      after(element.dataset.ppThen, answer);
    } catch (error) {
      showProblem(container, error);
      busy.disabled = false;
    }
  }

  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.ppApi) { return; }
    event.preventDefault();
    let body;
    try {
      body = collect(form);
    } catch (error) {
      showProblem(form, error);
      return;
    }
    send(form, form, body, form.querySelector("[type=submit]") || form);
  });

  document.addEventListener("click", function (event) {
    const button = event.target.closest("button[data-pp-api]");
    if (button) {
      event.preventDefault();
      const body = button.dataset.ppBody ? JSON.parse(button.dataset.ppBody) : undefined;
      send(button, button.closest("[data-error-scope]") || button.parentElement, body, button);
      return;
    }
    const removeRow = event.target.closest("[data-pp-remove-row]");
    if (removeRow) {
      removeRow.closest("tr").remove();
      return;
    }
    const addLevel = event.target.closest("[data-pp-add-level]");
    if (addLevel) {
      const form = addLevel.closest("form");
      const template = form.querySelector("[data-pp-level-template]");
      form.querySelector("[data-pp-levels]").append(template.content.cloneNode(true));
    }
  });

  // -- form behaviour -----------------------------------------------------------------------

  function kindSwitch(form) {
    const select = form.querySelector("[data-pp-kind]");
    if (!select) { return; }
    const show = function () {
      form.querySelectorAll("[data-kinds]").forEach(function (element) {
        element.hidden = !element.dataset.kinds.split(" ").includes(select.value);
      });
    };
    select.addEventListener("change", show);
    show();
  }

  function basisSwitch(form) {
    const select = form.querySelector("[data-pp-basis]");
    const head = form.querySelector("[data-pp-threshold-head]");
    if (!select || !head) { return; }
    select.addEventListener("change", function () {
      head.textContent = select.value === "spend" ? head.dataset.spend : head.dataset.points;
    });
  }

  // WCAG 2 contrast, as loyalty.domain.card_style checks it when the colours are saved.
  function luminance(hex) {
    const channel = function (offset) {
      const value = parseInt(hex.slice(offset, offset + 2), 16) / 255;
      return value <= 0.04045 ? value / 12.92 : Math.pow((value + 0.055) / 1.055, 2.4);
    };
    return 0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5);
  }

  function contrast(a, b) {
    const [light, dark] = [luminance(a), luminance(b)].sort(function (x, y) { return y - x; });
    return (light + 0.05) / (dark + 0.05);
  }

  function contrastHint(form) {
    const texts = form.dataset;
    const colour = function (name) { return form.querySelector("[data-colour=" + name + "]").value; };
    const locale = document.documentElement.lang === "de" ? "de-DE" : "en-GB";
    const ratio = new Intl.NumberFormat(locale, {maximumFractionDigits: 1, minimumFractionDigits: 1});
    const update = function () {
      const background = colour("background");
      [["text", colour("foreground"), 4.5, texts.labelText],
        ["accent", colour("accent"), 3, texts.labelAccent]].forEach(function (check) {
        const [name, fore, minimum, label] = check;
        const value = contrast(fore, background);
        const slot = form.querySelector("[data-contrast=" + name + "]");
        slot.textContent = label + " " + ratio.format(value) + ":1 – " +
          (value >= minimum ? texts.ok : texts.low);
        slot.className = value >= minimum ? "pp-good" : "pp-bad";
      });
      const paint = function (id, value) {
        const shape = document.getElementById(id);
        if (shape) { shape.setAttribute("fill", value); }
      };
      paint("card-bg", background);
      paint("card-title", colour("foreground"));
      paint("card-stripe", colour("accent"));
      paint("card-label", colour("accent"));
    };
    form.addEventListener("input", update);
    update();
  }

  // -- the simulator ------------------------------------------------------------------------

  function element(tag, attributes, children) {
    const node = document.createElement(tag);
    Object.entries(attributes || {}).forEach(function (entry) {
      if (entry[1] !== undefined && entry[1] !== null) { node.setAttribute(entry[0], entry[1]); }
    });
    (children || []).forEach(function (child) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    });
    return node;
  }

  function simulator(section) {
    const data = JSON.parse(section.dataset.sim);
    const texts = data.texts;
    const lang = section.dataset.lang;
    const locale = lang === "de" ? "de-DE" : "en-GB";
    const numbers = new Intl.NumberFormat(locale);
    const currency = section.dataset.currency;
    const moneyFormat = new Intl.NumberFormat(locale, {style: "currency", currency: currency});
    const version = Number(section.dataset.version);
    const base = "/api/v1/admin/programs/" + section.dataset.program;
    const form = section.querySelector("#sim-form");
    const result = section.querySelector("#sim-result");
    const tierNames = Object.fromEntries(data.tier_choices);

    const points = function (value) { return numbers.format(value) + " " + texts.points_unit; };
    const signed = function (value) {
      if (value === 0) { return texts.same; }
      return (value > 0 ? "+" : "−") + numbers.format(Math.abs(value)) + " " + texts.points_unit;
    };
    const trend = function (value) { return value > 0 ? "pp-up" : value < 0 ? "pp-down" : "pp-same"; };
    const tierName = function (code) {
      return code ? (tierNames[code] || code) : texts.no_tier;
    };

    const choose = function (who) {
      return function () { form.querySelector("input[name=who][value=" + who + "]").checked = true; };
    };
    form.elements.member_id.addEventListener("input", choose("member"));
    form.elements.tier.addEventListener("change", choose("tier"));

    section.querySelector("[data-sim-add-line]").addEventListener("click", function () {
      const template = section.querySelector("[data-sim-line-template]");
      section.querySelector("[data-sim-lines]").append(template.content.cloneNode(true));
    });

    function basket() {
      const lines = Array.from(section.querySelectorAll("[data-sim-lines] [data-sim-line]"));
      const read = lines.map(function (row, index) {
        const field = function (name) { return row.querySelector("[name=" + name + "]"); };
        const line = {
          line_id: String(index + 1),
          sku: field("sku").value.trim(),
          quantity: integer(field("quantity"), field("quantity").value.trim()),
          unit_price: money(field("unit_price"), field("unit_price").value.trim()),
        };
        const category = field("category").value.trim();
        if (category) { line.category = category; }
        return line;
      });
      const found = {currency: currency, lines: read};
      const location = form.elements.location.value.trim();
      if (location) { found.location = location; }
      return found;
    }

    // The member's tier if this version's thresholds applied to what they qualified with:
    // upgrades come at once and nothing is lowered before a review (loyalty.domain.tiers).
    function tierUnderVersion(status) {
      const policy = data.tiers;
      if (!policy) { return {code: null}; }
      const codes = policy.levels.map(function (level) { return level.code; });
      const held = codes.indexOf(status.current.code);
      if (policy.basis !== status.basis) {
        return {code: held >= 0 ? status.current.code : codes[0], note: texts.tier_basis_differs};
      }
      let reached = 0;
      policy.levels.forEach(function (level, index) {
        if (status.qualifying_total >= level.threshold) { reached = index; }
      });
      return {code: codes[Math.max(reached, held)]};
    }

    async function run() {
      const sampleBasket = basket();
      const atField = form.elements.at;
      const at = atField.value ? instant(atField, atField.value) : new Date().toISOString();
      const segments = list(form.elements.segments.value);
      const who = form.querySelector("input[name=who]:checked").value;
      let liveTier = form.elements.tier.value || null;
      let versionTier = liveTier;
      let member = null;
      if (who === "member") {
        const field = form.elements.member_id;
        const id = integer(field, field.value.trim());
        const status = await api.call("GET", base + "/members/" + id + "/tier");
        const under = tierUnderVersion(status);
        member = {status: status, note: under.note};
        liveTier = status.current.code;
        versionTier = under.code;
      }
      const sample = function (tier) {
        return {basket: sampleBasket, tier: tier, segments: segments, at: at};
      };
      const priced = await api.call("POST", base + "/rule-sets/" + version + "/preview", {samples: [sample(versionTier)]});
      const item = priced.items[0];
      let live = item.current;
      if (live && liveTier !== versionTier) {
        // The live rules priced the basket with this version's tier; the member holds another.
        const again = await api.call("POST", base + "/rule-sets/" + live.rule_set_version + "/preview", {samples: [sample(liveTier)]});
        live = again.items[0].draft;
      }
      show(live, item.draft, member, liveTier, versionTier);
    }

    function lineName(line) {
      const name = (lang === "de" ? line.name.de : line.name.en) || line.name.de || line.name.en || line.code;
      return line.multiplier ? name + " (× " + Number(line.multiplier).toLocaleString(locale) + ")" : name;
    }

    function show(live, draft, member, liveTier, versionTier) {
      result.replaceChildren();
      const liveTotal = live ? live.points : 0;
      const difference = draft.points - liveTotal;
      const column = function (id, heading, quote, tierLabel, tier) {
        return element("div", {class: "pp-sim-col", id: id}, [
          element("h3", {}, [heading]),
          element("p", {class: "pp-sim-total", "data-total": ""}, [quote ? points(quote.points) : "–"]),
          element("p", {class: "muted"}, [tierLabel + ": ", element("strong", {"data-tier": ""}, [tierName(tier)])]),
        ]);
      };
      result.append(element("div", {class: "pp-sim-head"}, [
        column("sim-live", live ? texts.live_column.replace("{n}", live.rule_set_version) : texts.no_rules_live,
          live, texts.tier_live, liveTier),
        element("div", {class: "pp-sim-diff " + trend(difference), id: "sim-difference"}, [
          element("span", {class: "muted"}, [texts.difference]), element("strong", {}, [signed(difference)]),
        ]),
        column("sim-draft", texts.draft_column.replace("{n}", draft.rule_set_version), draft,
          texts.tier_draft, versionTier),
      ]));
      if (member) {
        const total = member.status.basis === "spend"
          ? moneyFormat.format(member.status.qualifying_total / 100)
          : points(member.status.qualifying_total);
        result.append(element("p", {class: "muted"}, [texts.member_total.replace("{total}", total)]));
        if (member.note) { result.append(element("p", {class: "muted"}, [member.note])); }
      }
      // One row per reason (rule, tier, promotion, cap), in the order the quotes list them.
      const rows = new Map();
      [[live, 0], [draft, 1]].forEach(function (pair) {
        if (!pair[0]) { return; }
        pair[0].lines.forEach(function (line) {
          const key = line.source + ":" + line.code;
          if (!rows.has(key)) { rows.set(key, {line: line, points: [0, 0]}); }
          rows.get(key).points[pair[1]] += line.points;
          if (pair[1] === 1) { rows.get(key).line = line; }
        });
      });
      const body = element("tbody");
      rows.forEach(function (row, key) {
        const change = row.points[1] - row.points[0];
        body.append(element("tr", {class: change ? "pp-changed" : null, "data-line": key}, [
          element("td", {}, [element("span", {class: "pp-source"}, [texts["source_" + row.line.source] || row.line.source]), " ", lineName(row.line)]),
          element("td", {class: "pp-num"}, [numbers.format(row.points[0])]),
          element("td", {class: "pp-num"}, [numbers.format(row.points[1])]),
          element("td", {class: "pp-num " + trend(change)}, [signed(change)]),
        ]));
      });
      const foot = element("tfoot", {}, [
        element("tr", {}, [
          element("th", {}, [texts.total]),
          element("th", {class: "pp-num"}, [numbers.format(liveTotal)]),
          element("th", {class: "pp-num"}, [numbers.format(draft.points)]),
          element("th", {class: "pp-num " + trend(difference)}, [signed(difference)]),
        ]),
        element("tr", {class: "muted"}, [
          element("td", {}, [texts.qualifying_spend]),
          element("td", {class: "pp-num"}, [live ? moneyFormat.format(live.qualifying_spend / 100) : "–"]),
          element("td", {class: "pp-num"}, [moneyFormat.format(draft.qualifying_spend / 100)]),
          element("td", {}, []),
        ]),
      ]);
      result.append(element("table", {class: "pp-table pp-sim-table", id: "sim-table"}, [
        element("thead", {}, [element("tr", {}, [
          element("th", {}, [texts.explanation]),
          element("th", {class: "pp-num"}, [live ? texts.live_column.replace("{n}", live.rule_set_version) : texts.no_rules_live]),
          element("th", {class: "pp-num"}, [texts.draft_column.replace("{n}", draft.rule_set_version)]),
          element("th", {class: "pp-num"}, [texts.difference]),
        ])]),
        body,
        foot,
      ]));
      result.hidden = false;
    }

    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      const button = form.querySelector("[type=submit]");
      const slot = form.querySelector(".form-error");
      slot.hidden = true;
      button.disabled = true;
      try {
        await run();
      } catch (error) {
        showProblem(form, error);
      } finally {
        button.disabled = false;
      }
    });

    const lookBack = document.getElementById("simulation-form");
    const lookBackResult = document.getElementById("simulation-result");
    if (!lookBack) { return; }
    lookBack.addEventListener("submit", async function (event) {
      event.preventDefault();
      const button = lookBack.querySelector("[type=submit]");
      lookBack.querySelector(".form-error").hidden = true;
      button.disabled = true;
      try {
        const field = lookBack.elements.days;
        const days = integer(field, field.value.trim());
        const found = await api.call("GET", base + "/rule-sets/" + version + "/simulation?days=" + days);
        showLookBack(found);
      } catch (error) {
        showProblem(lookBack, error);
      } finally {
        button.disabled = false;
      }
    });

    function showLookBack(found) {
      lookBackResult.replaceChildren();
      const fact = function (label, value, extra) {
        return [element("dt", {}, [label]), element("dd", extra || {}, [value])];
      };
      lookBackResult.append(element("dl", {class: "pp-facts pp-look-back"}, [].concat(
        fact(texts.orders, numbers.format(found.orders)),
        fact(texts.members, numbers.format(found.members)),
        fact(texts.points_issued, points(found.points_issued)),
        fact(texts.points_with_draft, points(found.points_with_draft)),
        fact(texts.difference, signed(found.difference), {class: trend(found.difference), id: "simulation-difference"}),
        fact(texts.orders_more, numbers.format(found.orders_earning_more)),
        fact(texts.orders_less, numbers.format(found.orders_earning_less)),
        fact(texts.liability_difference, moneyFormat.format(found.liability_difference_minor / 100)),
      )));
      if (found.by_line.length) {
        const body = element("tbody", {}, found.by_line.map(function (impact) {
          const change = impact.points_with_draft - impact.points_now;
          const key = impact.source + ":" + impact.code;
          return element("tr", {class: change ? "pp-changed" : null}, [
            element("td", {}, [element("span", {class: "pp-source"}, [texts["source_" + impact.source] || impact.source]), " ", data.names[key] || impact.code]),
            element("td", {class: "pp-num"}, [numbers.format(impact.points_now)]),
            element("td", {class: "pp-num"}, [numbers.format(impact.points_with_draft)]),
            element("td", {class: "pp-num " + trend(change)}, [signed(change)]),
          ]);
        }));
        lookBackResult.append(element("table", {class: "pp-table"}, [
          element("thead", {}, [element("tr", {}, [
            element("th", {}, [texts.line]),
            element("th", {class: "pp-num"}, [texts.now_points]),
            element("th", {class: "pp-num"}, [texts.draft_points]),
            element("th", {class: "pp-num"}, [texts.difference]),
          ])]),
          body,
        ]));
      }
      lookBackResult.hidden = false;
    }
  }

  // -- start --------------------------------------------------------------------------------

  document.querySelectorAll("input[data-utc]").forEach(function (field) {
    field.value = localInput(field.dataset.utc);
    field.dataset.filled = field.value;
  });
  document.querySelectorAll("form[data-pp-kinds]").forEach(kindSwitch);
  document.querySelectorAll("form[data-pp-collect=tiers]").forEach(basisSwitch);
  document.querySelectorAll("form[data-pp-contrast]").forEach(contrastHint);
  document.querySelectorAll("[data-pp-simulator]").forEach(simulator);
})();
