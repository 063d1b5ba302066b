// gem-graph report: the two views, the item list and its filters, and opening an item
// (drawn by `GemDraw`, draw.js). Data reaches the page only through textContent and
// setAttribute (see draw.js).
(function () {
  "use strict";

  var el = GemDraw.el;
  var add = GemDraw.add;
  var badge = GemDraw.badge;
  var data = JSON.parse(document.getElementById("gem-data").textContent || "{}");
  var items = data.items || [];
  var envs = data.envs || {};
  var sources = data.sources || {};
  var haystacks = [];

  // ---- views --------------------------------------------------------------------------

  function setView(name) {
    var views = document.querySelectorAll("section.view");
    for (var i = 0; i < views.length; i++) views[i].hidden = views[i].id !== name;
    var links = document.querySelectorAll("nav a[data-view]");
    for (var j = 0; j < links.length; j++) {
      links[j].classList.toggle("active", links[j].getAttribute("data-view") === name);
    }
  }

  function route() {
    var hash = window.location.hash.replace(/^#/, "");
    var match = /^item-(\d+)$/.exec(hash);
    if (match) {
      setView("viewer");
      openItem(Number(match[1]));
    } else if (hash === "viewer") {
      setView("viewer");
    } else {
      setView("overview");
      var target = hash && hash !== "overview" ? document.getElementById(hash) : null;
      if (target) target.scrollIntoView();
    }
  }

  // In-page navigation is synchronous: the view changes before the click returns (a
  // `hashchange` would come later), and the address still gets the fragment, so links,
  // reloads and the back button work.
  function go(hash) {
    try {
      window.history.pushState(null, "", hash);
    } catch (error) {
      window.location.hash = hash;
      return;
    }
    route();
  }

  function onLinkClick(event) {
    var link = event.target.closest ? event.target.closest('a[href^="#"]') : null;
    if (!link || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    go(link.getAttribute("href"));
  }

  // ---- the list -----------------------------------------------------------------------

  // The text search looks at an item's values (ids, turns, outputs, reasons, problems),
  // not at the names of its fields.
  function strings(value, out) {
    if (value === null || value === undefined) return out;
    if (typeof value === "object") {
      var keys = Object.keys(value);
      for (var i = 0; i < keys.length; i++) strings(value[keys[i]], out);
    } else {
      out.push(String(value));
    }
    return out;
  }

  function haystack(index) {
    if (haystacks[index] === undefined) {
      haystacks[index] = strings(items[index], []).join("\n").toLowerCase();
    }
    return haystacks[index];
  }

  function buildList() {
    var list = document.getElementById("item-list");
    items.forEach(function (item, index) {
      var row = el("li", "item-row");
      row.setAttribute("data-index", String(index));
      row.setAttribute("data-status", item.kind);
      row.setAttribute("data-env", item.env || "");
      row.setAttribute("data-code", item.code || "");
      row.tabIndex = 0;
      var head = add(el("div", "row-head"), badge(item.kind, item.kind), el("span", "row-id", item.id));
      var sub = el("div", "row-sub muted", item.kind === "kept" ? item.env || "" : item.stage + " · " + item.code);
      add(row, head, sub, el("div", "row-title", item.title));
      row.addEventListener("click", function () {
        go("#item-" + index);
      });
      row.addEventListener("keydown", function (event) {
        if (event.key === "Enter") go("#item-" + index);
      });
      list.appendChild(row);
    });
    applyFilters();
  }

  function applyFilters() {
    var status = document.getElementById("filter-status").value;
    var env = document.getElementById("filter-env").value;
    var code = document.getElementById("filter-code").value;
    var text = document.getElementById("filter-text").value.trim().toLowerCase();
    var rows = document.querySelectorAll("#item-list .item-row");
    var shown = 0;
    for (var i = 0; i < rows.length; i++) {
      var row = rows[i];
      var index = Number(row.getAttribute("data-index"));
      var ok =
        (!status || row.getAttribute("data-status") === status) &&
        (!env || row.getAttribute("data-env") === env) &&
        (!code || row.getAttribute("data-code") === code) &&
        (!text || haystack(index).indexOf(text) !== -1);
      row.hidden = !ok;
      if (ok) shown++;
    }
    document.getElementById("filter-count").textContent = shown + " of " + rows.length + " items";
  }

  // ---- one item -----------------------------------------------------------------------

  function openItem(index) {
    var item = items[index];
    var detail = document.getElementById("item-detail");
    detail.textContent = "";
    var rows = document.querySelectorAll("#item-list .item-row");
    for (var i = 0; i < rows.length; i++) {
      rows[i].classList.toggle("selected", Number(rows[i].getAttribute("data-index")) === index);
    }
    if (!item) {
      add(detail, el("p", "muted", "No such item in this report."));
      return;
    }
    var head = add(el("header", "item-head"), el("h2", "", item.id));
    add(head, badge(item.kind, item.kind));
    if (item.env) add(head, badge(item.env, "env"));
    if (item.code) add(head, badge(item.code, "code"));
    add(detail, head);
    if (item.kind === "kept") GemDraw.drawRecord(detail, item);
    else GemDraw.drawReject(detail, item);
    GemDraw.drawUsage(detail, item.usage);
    if (item.env_key && envs[item.env_key]) GemDraw.drawEnvironment(detail, envs[item.env_key]);
    if (sources[item.doc_id]) GemDraw.drawSource(detail, sources[item.doc_id], item.doc_id);
    detail.scrollTop = 0;
  }

  // ---- start --------------------------------------------------------------------------

  ["filter-status", "filter-env", "filter-code", "filter-text"].forEach(function (id) {
    var node = document.getElementById(id);
    if (node) {
      node.addEventListener("input", applyFilters);
      node.addEventListener("change", applyFilters);
    }
  });
  if (document.getElementById("item-list")) buildList();
  document.addEventListener("click", onLinkClick);
  window.addEventListener("hashchange", route);
  window.addEventListener("popstate", route);
  route();
})();
