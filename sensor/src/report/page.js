"use strict";
// Filters by host, lowest severity and rule: an incident is shown when it matches all
// three; a host's section and timeline lane only while one of its incidents is.
(function () {
  const host = document.getElementById("f-host");
  const severity = document.getElementById("f-severity");
  const rule = document.getElementById("f-rule");
  const shown = document.getElementById("shown");
  const incidents = Array.from(document.querySelectorAll("article.incident"));
  const rulesOf = new Map(incidents.map((a) =>
    [a, new Set(Array.from(a.querySelectorAll("tr[data-rule]"), (r) => r.dataset.rule))]));

  function apply() {
    let count = 0;
    for (const a of incidents) {
      const show = (host.value === "" || a.dataset.host === host.value) &&
        Number(a.dataset.severity) >= Number(severity.value) &&
        (rule.value === "" || rulesOf.get(a).has(rule.value));
      a.hidden = !show;
      document.getElementById("bar-" + a.id.slice("incident-".length)).hidden = !show;
      if (show) count += 1;
    }
    for (const group of document.querySelectorAll("section.host, div.lane")) {
      group.hidden = !group.querySelector("article.incident:not([hidden]), a.bar:not([hidden])");
    }
    shown.textContent = count + " of " + incidents.length + " incidents shown";
  }

  function openAll(open) {
    for (const d of document.querySelectorAll("details")) d.open = open;
  }

  // A long command line (an encoded PowerShell) shows three lines until clicked.
  document.addEventListener("click", (event) => {
    const command = event.target.closest("code.cmd");
    if (command) {
      event.preventDefault();
      command.classList.toggle("whole");
    }
  });
  for (const select of [host, severity, rule]) select.addEventListener("change", apply);
  document.getElementById("expand").addEventListener("click", () => openAll(true));
  document.getElementById("collapse").addEventListener("click", () => openAll(false));
  apply();
})();
