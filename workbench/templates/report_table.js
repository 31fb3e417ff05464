/* The clip table of a run of any size: the rows (case x seed, one column per model) live as compact data in
   <script id="clip-data"> (workbench/report_table.py); this pages, filters and sorts them and builds clips
   and per-frame curves for the rows on screen only. The first page is also in the HTML, for viewers that
   run no scripts. window.ClipTable(prepare) draws into #clip-rows; `prepare(root)` lets report.js wire
   the playback of the rows it drew. */
(function () {
  "use strict";
  function esc(t) {
    return String(t).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
  }
  function el(id) { return document.getElementById(id); }
  function group(n) { return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ","); }

  // the report's number format (report.fmt_number): 3 significant digits, fixed notation, thousands grouped
  function fmt(v, scale, integer, signed) {
    if (v === null || v === undefined || v === "") { return ""; }
    if (typeof v === "string") { return v === "inf" ? "\u221e" : (v === "-inf" ? "-\u221e" : v); }
    var x = v * (scale || 1);
    var sign = signed && x > 0 ? "+" : "";
    if (integer && Math.round(x) === x) { return sign + group(x); }
    if (x === 0 || Math.abs(x) < 5e-9) { return "0"; }
    var mag = Math.floor(Math.log10(Math.abs(x)));
    if (mag >= 2) { return sign + group(Math.round(x)); }
    var text = x.toFixed(Math.min(8, 2 - mag));
    var parts = text.split(".");
    return sign + group(parts[0]).replace(/^(-?),/, "$1") + (parts.length > 1 ? "." + parts[1] : "");
  }

  function ClipTable(prepare) {
    var node = el("clip-data"), body = el("clip-rows");
    if (!node || !body) { return; }
    var D;
    try { D = JSON.parse(node.textContent); } catch (e) { return; }
    var media = {};
    try { media = JSON.parse((el("clip-media") || {}).textContent || "{}"); } catch (e) { media = {}; }
    // clips embedded in the HTML first page are not repeated in the data: take them from there
    Array.prototype.forEach.call(document.querySelectorAll("#clip-rows [data-clip]"), function (m) {
      var src = m.getAttribute("src") || "";
      if (src.indexOf("data:") === 0) { media[m.dataset.clip] = src; }
    });
    var S = D.strings, scores = D.scores, models = D.models, rows = D.rows;
    var state = { cse: "", prompt: "", seed: "", status: "", show: models.map(function () { return true; }),
                  sort: "order", score: "", model: "0", a: "0", b: models.length > 1 ? "1" : "0", dir: "best",
                  page: 0, size: D.page_rows || 10 };
    var order = null; // the filtered, sorted row indexes
    var bar = el("table-bar"), pager = el("table-pager");

    function value(row, mi, si) {
      var c = row.x[mi];
      if (!c || typeof c !== "object" || !c.s) { return null; }
      var v = c.s[si];
      return typeof v === "number" ? v : null;
    }
    function better(si) { return scores[si] ? scores[si].higher : null; }

    function query() {
      var cse = state.cse.toLowerCase(), prompt = state.prompt.toLowerCase();
      var out = [];
      for (var i = 0; i < rows.length; i++) {
        var r = rows[i];
        if (cse && S[r.c].toLowerCase().indexOf(cse) < 0) { continue; }
        if (prompt && S[r.p].toLowerCase().indexOf(prompt) < 0) { continue; }
        if (state.seed !== "" && r.seed !== state.seed) { continue; }
        var any = false, status = false;
        for (var m = 0; m < models.length; m++) {
          if (!state.show[m]) { continue; }
          var c = r.x[m];
          if (c && typeof c === "object") { any = true; if (c.st === state.status) { status = true; } }
        }
        if (!any || (state.status && !status)) { continue; }
        out.push(i);
      }
      if (state.sort !== "order" && state.score !== "") {
        var si = +state.score, hi = better(si);
        var key;
        if (state.sort === "model") {
          var mi = +state.model;
          key = function (i) { return value(rows[i], mi, si); };
        } else {
          var a = +state.a, b = +state.b;
          key = function (i) {
            var va = value(rows[i], a, si), vb = value(rows[i], b, si);
            return va === null || vb === null ? null : vb - va;
          };
        }
        // "best" first: the better direction of the score (highest first when it has none)
        var down = (hi === false) ? (state.dir !== "best") : (state.dir === "best");
        var keyed = out.map(function (i, k) { return [key(i), k, i]; });
        keyed.sort(function (p, q) {
          if (p[0] === null || q[0] === null) { return (p[0] === null) - (q[0] === null) || p[1] - q[1]; }
          return (down ? q[0] - p[0] : p[0] - q[0]) || p[1] - q[1];
        });
        out = keyed.map(function (t) { return t[2]; });
      }
      order = out;
    }

    function scoreRows(c, mi) {
      if (!c.s) { return ""; }
      var html = "", notes = [], best = c.b || [], still = c.st === "still";
      var backends = {};
      if (c.k !== undefined) {
        S[c.k].split("|").forEach(function (kv) { var at = kv.indexOf("="); if (at > 0) { backends[kv.slice(0, at)] = kv.slice(at + 1); } });
      }
      for (var si = 0; si < c.s.length; si++) {
        var v = c.s[si];
        if (v === "") { continue; }
        var sc = scores[si];
        var name = '<td title="' + esc(sc.title) + '">' + esc(sc.name).replace(/_/g, "_<wbr>") + (sc.unit ? " <small>" + esc(sc.unit) + "</small>" : "") + "</td>";
        if (v === null) {
          var why = S[(c.n || {})[si]] || "no value";
          if (notes.indexOf(why) < 0) { notes.push(why); }
          html += "<tr>" + name + '<td class="v" title="' + esc(why) + '"><span class="null" title="' + esc(why) +
            '">n/a<sup>' + (notes.indexOf(why) + 1) + "</sup></span></td></tr>";
        } else {
          var w = (c.w || {})[si], tip = backends[si] || "";
          if (w !== undefined) { tip += (tip ? " \u00b7 " : "") + "worst frame " + w + (c.f ? " (" + (w / c.f).toFixed(2) + " s)" : ""); }
          var cls = (best.indexOf(si) >= 0 ? "best" : "") + (still && sc.stillness ? " trivial" : "");
          html += "<tr>" + name + '<td class="v" title="' + esc(tip) + '"><span class="' + cls + '">' +
            esc(fmt(v, sc.scale, sc.integer)) + "</span></td></tr>";
        }
      }
      var out = html ? '<table class="scores">' + html + "</table>" : "";
      notes.forEach(function (why, k) { out += '<div class="why"><sup>' + (k + 1) + "</sup> " + esc(why) + "</div>"; });
      return out;
    }

    function cellHtml(r, mi) {
      var c = r.x[mi], model = models[mi];
      if (typeof c === "number") {
        return '<span class="null" title="' + esc(S[c]) + '">not run</span><span class="why">' + esc(S[c]) + "</span>";
      }
      var h = '<div class="panel active" data-variant="0"><div class="muted" style="font-size:11.5px">' + esc(S[r.s]) +
        (c.t ? " \u00b7 " + esc(c.t) : "");
      (c.m || []).forEach(function (m) { h += '<span class="mark" title="' + esc(S[m[1]]) + '">' + esc(S[m[0]]) + "</span>"; });
      if (c.st === "still") { h += '<span class="mark still" title="below the motion floor for its size: its consistency scores are trivially high and earn no \u2605">still</span>'; }
      h += "</div>";
      if (c.st === "failed") {
        h += '<div class="failed" title="' + esc(S[c.e]) + '">failed: ' + esc(S[c.e]) + "</div>";
      } else if (!c.v) {
        h += '<span class="null">no clip</span><span class="why">the record names no output file</span>';
      } else if (c.x === 0) {
        h += '<span class="null" title="' + esc(c.v) + ' is not in the run folder">clip file missing</span><span class="why">' +
          esc(c.v) + " is not in the run folder (copy clips/ with report.html)</span>";
      } else {
        var src = media[c.v], embedded = !!src;
        if (!src) { src = c.v; }
        var label = model + " on " + S[r.c] + ", " + S[r.s];
        h += '<div class="media' + (embedded ? "" : " linked") + '">';
        if (/\.(png|jpe?g|webp)$/i.test(c.v)) {
          h += '<img src="' + esc(src) + '" data-clip="' + esc(c.v) + '" alt="' + esc(label) + '">';
        } else {
          h += '<video src="' + esc(src) + '" data-clip="' + esc(c.v) + '" data-embedded="' + (embedded ? 1 : 0) +
            '" muted loop playsinline autoplay preload="auto" title="' + esc(label + (c.i !== undefined ? " (" + S[c.i] + ")" : "")) + '"></video>';
          if (c.a) { h += '<button class="sound" type="button" title="unmute this clip (mutes the others)">\u266a unmute</button>'; }
        }
        h += "</div>";
      }
      h += scoreRows(c, mi);
      (c.wa || []).forEach(function (w) {
        var t = S[w];
        h += '<div class="meta" title="' + esc(t) + '">\u26a0 ' + esc(t.length > 100 ? t.slice(0, 97) + "..." : t) + "</div>";
      });
      if (c.i !== undefined) { h += '<div class="meta">' + esc(S[c.i]) + "</div>"; }
      return h + "</div>";
    }

    function rowHtml(i) {
      var r = rows[i];
      var h = '<tr class="caserow" id="' + esc(S[r.id]) + '" data-row="' + i + '"><td class="case sticky"><div class="id">' + esc(S[r.c]) +
        '</div><div class="meta">' + esc(S[r.s]) + "</div>";
      if (S[r.p]) { h += '<div class="prompt">\u201c' + esc(S[r.p]) + "\u201d</div>"; }
      if (S[r.in]) { h += '<div class="meta">' + esc(S[r.in]) + "</div>"; }
      h += '<div class="ctl"><button class="playpause" type="button" title="play or pause every clip in this row">\u25b6 play/pause</button>' +
        '<button class="restart" type="button" title="start every clip in this row from the beginning">\u27f2 restart</button>' +
        '<button class="curves" type="button" title="per-frame values of every clip in this row">curves</button></div></td>';
      for (var m = 0; m < models.length; m++) {
        if (!state.show[m]) { continue; }
        h += '<td class="clip" data-model="' + m + '">' + cellHtml(r, m) + "</td>";
      }
      return h + "</tr>";
    }

    // a run of points as SVG path data; a lone point (its neighbours have no value) as a short dash
    function segment(pts) {
      if (!pts.length) { return ""; }
      return "M" + pts.join("L") + (pts.length === 1 ? "h2" : "");
    }
    // per-frame curves of one row: one small SVG per score, one line per model, x = worst frame
    function curvesHtml(i) {
      var r = rows[i], panels = "", lv = D.levels, gap = D.gap;
      var shown = models.map(function (_, m) { return m; }).filter(function (m) { return state.show[m]; });
      for (var si = 0; si < scores.length; si++) {
        var lines = [], lo = Infinity, hi = -Infinity, frames = 0;
        shown.forEach(function (m) {
          var c = r.x[m];
          if (!c || typeof c !== "object" || c.c === undefined) { return; }
          var q = D.series[c.c][si];
          if (!q) { return; }
          lines.push({ m: m, q: q, w: (c.w || {})[si] });
          lo = Math.min(lo, q[0]); hi = Math.max(hi, q[1]); frames = Math.max(frames, q[2]);
        });
        if (!lines.length) { continue; }
        var W = 360, H = 70, span = (hi - lo) || 1, sc = scores[si];
        var svg = '<svg class="curve" width="' + W + '" height="' + (H + 16) + '" viewBox="0 0 ' + W + " " + (H + 16) + '">';
        lines.forEach(function (ln) {
          var q = ln.q, n = q[3].length, pts = [], path = "";
          for (var k = 0; k < n; k++) {
            var ch = q[3].charAt(k);
            if (ch === gap) { path += segment(pts); pts = []; continue; }
            var val = q[0] + lv.indexOf(ch) / (lv.length - 1) * (q[1] - q[0]);
            var x = (n > 1 ? k / (n - 1) : 0.5) * (q[2] - 1) / Math.max(1, frames - 1) * (W - 8) + 4;
            var y = H - (val - lo) / span * (H - 8) - 4;
            pts.push(x.toFixed(1) + "," + y.toFixed(1));
          }
          path += segment(pts);
          var color = D.colors[models[ln.m]];
          svg += '<path d="' + path + '" fill="none" stroke="' + color + '" stroke-width="1.5" stroke-linecap="round"><title>' + esc(models[ln.m]) + "</title></path>";
          if (ln.w !== undefined && frames > 1) {
            var wx = ln.w / (frames - 1) * (W - 8) + 4;
            var bin = Math.min(n - 1, Math.floor(ln.w / Math.max(1, q[2]) * n));
            var wch = q[3].charAt(bin);
            var wv = wch === gap ? lo : q[0] + lv.indexOf(wch) / (lv.length - 1) * (q[1] - q[0]);
            var wy = H - (wv - lo) / span * (H - 8) - 4;
            svg += '<text x="' + wx.toFixed(1) + '" y="' + (wy + 4).toFixed(1) + '" fill="' + color +
              '" font-size="12" text-anchor="middle"><title>worst frame ' + ln.w + " of " + esc(models[ln.m]) + "</title>\u00d7</text>";
          }
        });
        svg += '<text x="4" y="' + (H + 13) + '" font-size="10" fill="#6b7280">' + esc(sc.label) + ": " +
          esc(fmt(lo, sc.scale)) + " \u2013 " + esc(fmt(hi, sc.scale)) + " over " + frames + " frames</text></svg>";
        panels += svg;
      }
      (r.se || []).forEach(function (e) { panels += '<div class="meta">series not read: ' + esc(S[e]) + "</div>"; });
      if (!panels) { panels = '<span class="why">no per-frame values recorded for these clips</span>'; }
      var legend = shown.map(function (m) {
        return '<span class="item"><span class="swatch" style="background:' + D.colors[models[m]] + '"></span>' + esc(models[m]) + "</span>";
      }).join("");
      return '<tr class="curverow" data-row="' + i + '"><td class="sticky"></td><td colspan="' + shown.length +
        '"><div class="legend">' + legend + '</div><div class="curvegrid">' + panels + "</div></td></tr>";
    }

    function drawPager() {
      var n = order.length, pages = Math.max(1, Math.ceil(n / state.size));
      state.page = Math.min(state.page, pages - 1);
      var first = n ? state.page * state.size + 1 : 0, last = Math.min(n, (state.page + 1) * state.size);
      var text = n ? "rows " + group(first) + "\u2013" + group(last) + " of " + group(n) +
        (n < rows.length ? " (filtered from " + group(rows.length) + ")" : "") : "no row matches the filter";
      var h = '<button type="button" data-page="prev"' + (state.page ? "" : " disabled") + '>\u2039 prev</button>' +
        '<span class="pageinfo">' + text + " \u00b7 page " + (state.page + 1) + " of " + group(pages) + "</span>" +
        '<button type="button" data-page="next"' + (state.page < pages - 1 ? "" : " disabled") + ">next \u203a</button>";
      [bar.querySelector(".pager"), pager].forEach(function (p) { if (p) { p.innerHTML = h; } });
    }

    function draw() {
      Array.prototype.forEach.call(body.querySelectorAll("video"), function (v) {
        v.pause(); v.removeAttribute("src"); try { v.load(); } catch (e) { /* released */ }
      });
      var start = state.page * state.size;
      var html = "";
      order.slice(start, start + state.size).forEach(function (i) { html += rowHtml(i); });
      body.innerHTML = html;
      Array.prototype.forEach.call(document.querySelectorAll("#clip-grid thead th[data-model]"), function (th) {
        th.style.display = state.show[+th.dataset.model] ? "" : "none";
      });
      drawPager();
      prepare(body);
    }
    function update(keepPage) { query(); if (!keepPage) { state.page = 0; } draw(); }

    // the bar: filters, sort, page size; failed and still clips one click away
    function options(list, chosen) {
      return list.map(function (o) {
        return '<option value="' + esc(o[0]) + '"' + (String(o[0]) === String(chosen) ? " selected" : "") + ">" + esc(o[1]) + "</option>";
      }).join("");
    }
    var scoreOpts = scores.map(function (s, i) {
      return [i, s.name + (s.higher === true ? " \u2191" : (s.higher === false ? " \u2193" : ""))];
    });
    var modelOpts = models.map(function (m, i) { return [i, m]; });
    var seedOpts = [["", "every seed"]].concat(D.seeds.map(function (s) { return [s, "seed " + s]; }));
    var counts = D.counts || {};
    bar.innerHTML =
      '<div class="filters"><label>case <input type="search" data-f="cse" placeholder="part of a case id" size="14"></label>' +
      '<label>prompt <input type="search" data-f="prompt" placeholder="words in the prompt" size="16"></label>' +
      '<label>seed <select data-f="seed">' + options(seedOpts, "") + "</select></label>" +
      '<label>status <select data-f="status">' + options([["", "any"], ["ok", "ok (" + group(counts.ok || 0) + ")"],
        ["failed", "failed (" + group(counts.failed || 0) + ")"], ["still", "still (" + group(counts.still || 0) + ")"]], "") +
      "</select></label>" +
      '<button type="button" data-quick="failed"' + (counts.failed ? "" : " disabled") + ">failed clips (" + group(counts.failed || 0) + ")</button>" +
      '<button type="button" data-quick="still"' + (counts.still ? "" : " disabled") + ">still clips (" + group(counts.still || 0) + ")</button>" +
      '<span class="models">models ' + models.map(function (m, i) {
        return '<label><input type="checkbox" data-show="' + i + '" checked><span class="swatch" style="background:' +
          D.colors[m] + '"></span>' + esc(m) + "</label>";
      }).join("") + "</span></div>" +
      '<div class="sorts"><label>sort <select data-f="sort">' + options([["order", "case order"], ["model", "a model's score"],
        ["diff", "difference between two models"]], "order") + "</select></label>" +
      '<label class="s-any">score <select data-f="score">' + options(scoreOpts, 0) + "</select></label>" +
      '<label class="s-model">of <select data-f="model">' + options(modelOpts, 0) + "</select></label>" +
      '<label class="s-diff">where <select data-f="b">' + options(modelOpts, state.b) + '</select></label>' +
      '<label class="s-diff">beats <select data-f="a">' + options(modelOpts, 0) + "</select></label>" +
      '<label class="s-any"><select data-f="dir">' + options([["best", "most / best first"], ["worst", "least / worst first"]], "best") +
      "</select></label>" +
      '<label>rows per page <select data-f="size">' + options([[10, 10], [20, 20], [50, 50]], state.size) + "</select></label>" +
      '<span class="pager"></span></div>';
    bar.hidden = false;
    pager.hidden = false;
    state.score = scores.length ? "0" : "";
    function sortVisibility() {
      Array.prototype.forEach.call(bar.querySelectorAll(".s-any"), function (x) { x.style.display = state.sort === "order" ? "none" : ""; });
      Array.prototype.forEach.call(bar.querySelectorAll(".s-model"), function (x) { x.style.display = state.sort === "model" ? "" : "none"; });
      Array.prototype.forEach.call(bar.querySelectorAll(".s-diff"), function (x) { x.style.display = state.sort === "diff" ? "" : "none"; });
    }
    sortVisibility();
    var typing = null;
    bar.addEventListener("input", function (e) {
      var f = e.target.dataset.f;
      if (f !== "cse" && f !== "prompt") { return; }
      state[f] = e.target.value;
      window.clearTimeout(typing);
      typing = window.setTimeout(function () { update(false); }, 150);
    });
    bar.addEventListener("change", function (e) {
      var t = e.target;
      if (t.dataset.show !== undefined) {
        state.show[+t.dataset.show] = t.checked;
        if (!state.show.some(Boolean)) { state.show[+t.dataset.show] = true; t.checked = true; }
        update(false);
        return;
      }
      var f = t.dataset.f;
      if (!f || f === "cse" || f === "prompt") { return; }
      state[f] = f === "size" ? +t.value : t.value;
      sortVisibility();
      update(false);
    });
    function paging(e) {
      var t = e.target;
      if (!(t instanceof Element)) { return; }
      if (t.dataset.quick) {
        state.status = t.dataset.quick;
        bar.querySelector('select[data-f="status"]').value = state.status;
        update(false);
      } else if (t.dataset.page) {
        state.page += t.dataset.page === "next" ? 1 : -1;
        draw();
        if (e.currentTarget === pager) { el("clip-grid").scrollIntoView({ block: "start" }); }
      }
    }
    bar.addEventListener("click", paging);
    pager.addEventListener("click", paging);
    body.addEventListener("click", function (e) {
      var t = e.target;
      if (!(t instanceof Element) || !t.matches("button.curves")) { return; }
      var tr = t.closest("tr.caserow"), next = tr.nextElementSibling;
      if (next && next.classList.contains("curverow")) { next.remove(); t.classList.remove("on"); return; }
      tr.insertAdjacentHTML("afterend", curvesHtml(+tr.dataset.row));
      t.classList.add("on");
    });
    // the page's query, for tests and for a reader's console
    window.clipTable = {
      state: state, rows: function () { return order.slice(); }, data: D,
      set: function (changes) { for (var k in changes) { state[k] = changes[k]; } update(!!changes.page); }
    };
    update(false);
  }
  window.ClipTable = ClipTable;
}());
