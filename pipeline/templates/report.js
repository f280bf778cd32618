(function () {
  var input = document.getElementById("kortsok");
  var rows = Array.prototype.slice.call(document.querySelectorAll("#korttabell tbody tr"));
  var counter = document.getElementById("kortteller");
  var bar = document.getElementById("filter");
  var wsSelect = document.getElementById("filter-verksted");
  var groupSelect = document.getElementById("filter-gruppe");
  var status = document.getElementById("filterstatus");
  var SEP = "\u0000";
  var chosen = {workshop: "", group: null};  // group null: any group; "": cards without a group

  function matches(el) {
    if (chosen.workshop && el.getAttribute("data-workshop") !== chosen.workshop) { return false; }
    return chosen.group === null || !el.hasAttribute("data-group") || el.getAttribute("data-group") === chosen.group;
  }
  function show(el, on) {
    if (el instanceof SVGElement) { el.style.display = on ? "" : "none"; } else { el.hidden = !on; }
  }
  function showCards() {
    var query = input.value.trim().toLowerCase(), shown = 0;
    rows.forEach(function (row) {
      var hit = matches(row) && (!query || row.textContent.toLowerCase().indexOf(query) !== -1);
      row.hidden = !hit;
      if (hit) { shown += 1; }
    });
    counter.textContent = "Viser " + shown + " av " + rows.length + " kort";
  }
  function recount() {
    var counts = new Map();
    function add(key) { counts.set(key, (counts.get(key) || 0) + 1); }
    rows.forEach(function (row) {
      if (!matches(row)) { return; }
      var d = row.dataset;
      add("all:"); add("status:" + d.status);
      if (d.status === "rejected") { return; }  // the report counts themes and categories without them
      [["theme", d.theme], ["sub", d.subtheme], ["cat", d.category]].forEach(function (pair) {
        if (pair[1]) { add(pair[0] + ":" + pair[1]); add(pair[0] + ":" + pair[1] + SEP + d.workshop); }
      });
    });
    document.querySelectorAll("[data-n]").forEach(function (el) {
      var perWorkshop = el.hasAttribute("data-ws");
      var n = counts.get(el.dataset.n + ":" + el.dataset.id + (perWorkshop ? SEP + el.dataset.ws : "")) || 0;
      el.textContent = String(n);
      if (perWorkshop) { el.closest("li").hidden = n === 0; }
    });
    document.querySelectorAll("[data-scope]").forEach(function (el) {
      el.hidden = !counts.get(el.dataset.scope + ":" + el.dataset.id);
    });
    return counts.get("all:") || 0;
  }
  function apply() {
    var option = groupSelect.options[groupSelect.selectedIndex];
    chosen.workshop = wsSelect.value;
    chosen.group = groupSelect.value ? option.getAttribute("data-group") : null;
    var n = recount();
    document.querySelectorAll("[data-workshop]").forEach(function (el) {
      // Not the table rows (showCards adds the text search) nor the group chooser's options.
      if (!el.closest("#korttabell") && !el.closest("#filter")) { show(el, matches(el)); }
    });
    document.querySelectorAll(".quotes").forEach(function (box) {
      box.querySelector(".no-quotes").hidden = box.querySelector("blockquote:not([hidden])") !== null;
    });
    showCards();
    var active = chosen.workshop !== "" || chosen.group !== null;
    bar.classList.toggle("active", active);
    status.textContent = active
      ? "Utvalg: " + (chosen.group !== null ? option.textContent : chosen.workshop) + " – " + n + " av " +
        rows.length + " kort. Oversiktsdiagrammet, bredde, unike bidrag og stemmer gjelder hele materialet."
      : "Alle verksteder og grupper: " + rows.length + " kort.";
  }
  function limitGroups() {
    // Only the chosen workshop's groups can be chosen; a group of another workshop is let go.
    var ws = wsSelect.value;
    Array.prototype.forEach.call(groupSelect.options, function (o) {
      if (o.value) { o.hidden = ws !== "" && o.getAttribute("data-workshop") !== ws; }
    });
    if (groupSelect.options[groupSelect.selectedIndex].hidden) { groupSelect.value = ""; }
  }
  wsSelect.addEventListener("change", function () { limitGroups(); apply(); });
  groupSelect.addEventListener("change", function () {
    if (groupSelect.value) {
      wsSelect.value = groupSelect.options[groupSelect.selectedIndex].getAttribute("data-workshop");
    }
    limitGroups(); apply();
  });
  document.getElementById("filter-nullstill").addEventListener("click", function () {
    wsSelect.value = ""; groupSelect.value = ""; limitGroups(); apply();
  });
  input.addEventListener("input", showCards);
  limitGroups(); apply();  // a reloaded page may keep its last choice
})();
