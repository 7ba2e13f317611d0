// Link chart of one fused lead (voiceprint workbench): draws the elements embedded in the page with the
// vendored Cytoscape.js; a click shows a node's or an edge's evidence beside the chart, a double-click
// opens the node's own page (person, case, phone). Nothing is loaded from outside the workbench.
(function () {
  "use strict";
  var holder = document.getElementById("leadchart");
  var data = document.getElementById("leadchart-data");
  if (!holder || !data || typeof cytoscape !== "function") { return; }
  var colours = { person: "#b3261e", reg: "#e07b39", number: "#1f5f99", "case": "#2d2d2d", voice: "#1e7b34",
                  handset: "#7a5ea8", cluster: "#8aa1b4" };
  var shapes = { person: "ellipse", reg: "ellipse", number: "round-rectangle", "case": "diamond", voice: "triangle",
                 handset: "hexagon", cluster: "octagon" };
  var cy = cytoscape({
    container: holder,
    elements: JSON.parse(data.textContent),
    wheelSensitivity: 0.3,
    style: [
      { selector: "node", style: {
          "label": "data(label)", "text-wrap": "wrap", "font-size": 11, "text-valign": "bottom", "text-margin-y": 4,
          "width": 34, "height": 34, "color": "#1d2733", "text-background-color": "#fff", "text-background-opacity": 0.8,
          "background-color": function (n) { return colours[n.data("type")] || "#999"; },
          "shape": function (n) { return shapes[n.data("type")] || "ellipse"; } } },
      { selector: "node[?lead]", style: { "width": 52, "height": 52, "border-width": 4, "border-color": "#f2c14e", "font-weight": "bold" } },
      { selector: "node[?rival]", style: { "opacity": 0.75 } },
      { selector: "node[lead_rank]", style: { "border-width": 3, "border-color": "#f2c14e", "border-style": "dashed" } },
      { selector: "edge", style: {
          "label": "data(label)", "font-size": 10, "curve-style": "bezier", "target-arrow-shape": "triangle",
          "width": 2, "line-color": "#9aa7b4", "target-arrow-color": "#9aa7b4", "text-rotation": "autorotate",
          "text-background-color": "#fff", "text-background-opacity": 0.85, "color": "#3b4652" } },
      { selector: "edge[log10_lr > 0]", style: { "line-color": "#1e7b34", "target-arrow-color": "#1e7b34", "width": 3 } },
      { selector: "edge[log10_lr < 0]", style: { "line-color": "#b3261e", "target-arrow-color": "#b3261e", "line-style": "dashed" } },
      { selector: "edge[kind = 'also_tied']", style: { "line-style": "dotted", "line-color": "#c9a227", "target-arrow-color": "#c9a227", "width": 2 } },
      { selector: ":selected", style: { "overlay-color": "#f2c14e", "overlay-opacity": 0.35 } }
    ],
    // the lead at the top, its numbers and voices below it, the cases and other leads further down
    layout: { name: "breadthfirst", roots: "node[?lead]", directed: false, spacingFactor: 1.25, padding: 40, animate: false }
  });
  window.leadChart = cy;  // for tests and the analyst's console

  var wordsData = document.getElementById("leadchart-words");
  var words = wordsData ? JSON.parse(wordsData.textContent) : {};
  function w(text) { return words[text] || text; }  // the page's language (English when the page has no entry)
  var title = document.getElementById("chart-title");
  var detail = document.getElementById("chart-detail");

  function show(heading, rows, href) {
    title.textContent = heading;
    detail.textContent = "";
    var dl = document.createElement("dl");
    rows.forEach(function (r) {
      if (r[1] === undefined || r[1] === null || r[1] === "") { return; }
      var dt = document.createElement("dt"); dt.textContent = r[0];
      var dd = document.createElement("dd");
      dd.textContent = typeof r[1] === "object" ? JSON.stringify(r[1], null, 1) : String(r[1]);
      dl.appendChild(dt); dl.appendChild(dd);
    });
    detail.appendChild(dl);
    if (href) {
      var a = document.createElement("a"); a.href = href; a.textContent = w("open") + " " + heading; a.setAttribute("data-testid", "chart-open");
      var p = document.createElement("p"); p.appendChild(a); detail.appendChild(p);
    }
  }

  cy.on("tap", "node", function (evt) {
    var d = evt.target.data();
    var screen = d.screen || {};
    show(d.label.split("\n")[0], [
      [w("kind"), d.kind], [w("lead rank"), d.lead_rank], [w("log10 LR in this case"), d.log10_lr],
      [w("probability among the case's candidates"), d.probability === undefined ? undefined : Math.round(100 * d.probability) + " %"],
      [w("evidence terms"), d.terms], [w("calling screen: log10 LR"), screen.log10_lr], [w("calling screen: score"), screen.score],
      [w("calling screen: reasons"), (screen.reasons || []).join(" | ")], [w("explanation"), d.explanation]
    ], d.href || (d.lead_rank ? "/fused/chart?key=" + encodeURIComponent(d.id) : null));
  });
  cy.on("tap", "edge", function (evt) {
    var d = evt.target.data();
    var rows = [[w("from"), d.source], [w("to"), d.target], ["log10 LR", d.log10_lr], [w("in cases"), d.cases.join(", ")]];
    Object.keys(d.detail || {}).forEach(function (k) { rows.push([k.replace(/_/g, " "), d.detail[k]]); });
    show(d.kind_label || d.kind.replace(/_/g, " "), rows, null);
  });
  cy.on("dbltap", "node", function (evt) {
    var d = evt.target.data();
    var href = d.href || (d.lead_rank ? "/fused/chart?key=" + encodeURIComponent(d.id) : null);
    if (href) { window.location.href = href; }
  });
}());
