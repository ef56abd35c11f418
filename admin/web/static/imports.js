// The import page (admin/web/imports.py): sends the chosen CSV file to the admin API as a
// multipart form (the page session cookie goes along; the API's role guard decides) and shows
// the report. "Check only" is a dry run, answered here; an import opens its stored report.
(function () {
  "use strict";
  const form = document.getElementById("import-form");
  if (!form) { return; }
  const texts = document.getElementById("import-texts").dataset;
  const problemTexts = JSON.parse(texts.problems || "{}");
  const report = document.getElementById("import-report");
  const errorSlot = form.querySelector(".form-error");
  const numbers = new Intl.NumberFormat(texts.lang === "de" ? "de-DE" : "en-GB");

  function fail(message) {
    errorSlot.textContent = message;
    errorSlot.hidden = false;
  }

  function cell(row, text, className) {
    const td = document.createElement("td");
    if (className) { td.className = className; }
    td.textContent = text;
    row.append(td);
    return td;
  }

  function showReport(run) {
    document.getElementById("report-file").textContent = run.filename;
    const status = document.getElementById("report-status");
    status.textContent = texts["status" + run.status.charAt(0).toUpperCase() + run.status.slice(1)] || run.status;
    status.className = "badge " + ({imported: "good", valid: "good", rejected: "bad", failed: "warn"}[run.status] || "");
    report.querySelectorAll("[data-count]").forEach(function (tile) {
      tile.textContent = numbers.format(run[tile.dataset.count]);
    });
    const note = document.getElementById("report-note");
    note.hidden = !(run.dry_run || run.status === "rejected");
    note.textContent = run.status === "rejected" && !run.dry_run ? texts.rejectedNote : texts.dryRunNote;
    const body = report.querySelector("#report-problems tbody");
    body.replaceChildren();
    run.problems.forEach(function (problem) {
      const row = document.createElement("tr");
      cell(row, String(problem.line), "num");
      const column = cell(row, "");
      if (problem.column) {
        const code = document.createElement("code");
        code.textContent = problem.column;
        column.append(code);
      }
      cell(row, problemTexts[problem.code] || problem.code);
      cell(row, problem.message, "muted");
      body.append(row);
    });
    document.getElementById("report-problems").hidden = run.problems.length === 0;
    const more = document.getElementById("report-more");
    more.hidden = run.rows_invalid <= run.problems.length;
    more.textContent = texts.more.replace("{count}", numbers.format(run.rows_invalid));
    report.hidden = false;
    report.scrollIntoView({block: "nearest"});
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    errorSlot.hidden = true;
    const submitter = event.submitter;
    const dryRun = submitter ? submitter.dataset.dryRun === "true" : true;
    const file = form.elements.file.files[0];
    if (!file) { fail(texts.chooseFile); return; }
    if (file.size > Number(form.dataset.maxBytes)) { fail(texts.tooLarge); return; }
    const kind = form.querySelector("input[name=kind]:checked").value;
    const query = new URLSearchParams({
      skip_bad_lines: String(form.elements.skip_bad_lines.checked),
      dry_run: String(dryRun),
    });
    const upload = new FormData();
    upload.append("file", file, file.name);
    const buttons = form.querySelectorAll("button");
    buttons.forEach(function (button) { button.disabled = true; });
    form.setAttribute("aria-busy", "true");
    try {
      const response = await fetch(form.dataset.endpoint + kind + "?" + query.toString(), {
        method: "POST",
        body: upload,
        credentials: "same-origin",
        headers: {"Accept": "application/json"},
      });
      const payload = await response.json().catch(function () { return null; });
      if (response.status === 401) {
        window.location.assign("/admin/login?next=" + encodeURIComponent(location.pathname + location.search));
        return;
      }
      if (!response.ok) {
        fail((payload && payload.detail) || String(response.status));
        return;
      }
      if (payload.run_id !== null) {
        window.location.assign(form.dataset.runPage.replace("{id}", String(payload.run_id)));
        return;
      }
      showReport(payload);
    } catch (error) {
      fail(error.message);
    } finally {
      buttons.forEach(function (button) { button.disabled = false; });
      form.removeAttribute("aria-busy");
    }
  });
})();
