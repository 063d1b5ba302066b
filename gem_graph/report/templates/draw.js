// gem-graph report: one item (a kept trajectory or a reject) drawn from the page's data.
// Every string from the data goes into the page through textContent, or an attribute set
// with setAttribute on an element made here, never through innerHTML, and no link target
// is built from data, so text in a record can never become markup. Exposes `GemDraw`.
var GemDraw = (function () {
  "use strict";

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function add(parent) {
    for (var i = 1; i < arguments.length; i++) {
      if (arguments[i]) parent.appendChild(arguments[i]);
    }
    return parent;
  }

  function show(value) {
    if (value === null || value === undefined) return "null";
    return typeof value === "string" ? value : JSON.stringify(value);
  }

  function badge(text, kind) {
    return el("span", "badge " + (kind || ""), text);
  }

  function section(title, className) {
    var box = el("section", "panel " + (className || ""));
    add(box, el("h3", "", title));
    return box;
  }

  function drawRecord(detail, item) {
    var s = item.stats || {};
    var facts = [
      "messages " + show(s.messages),
      "user turns " + show(s.user_turns),
      "tool calls " + show(s.tool_calls),
      "distinct tools " + show(s.distinct_tools),
      "errors recovered " + show(s.errors_recovered),
      s.refined ? "refined" : "grounded (not refined)"
    ];
    add(detail, el("p", "facts muted", facts.join(" · ")));
    if (s.patterns && s.patterns.length) {
      var patterns = el("p", "patterns");
      s.patterns.forEach(function (p) { add(patterns, badge(p, "pattern")); });
      add(detail, patterns);
    }
    if (item.system) {
      var system = add(el("details", "system"), el("summary", "", "system prompt"));
      add(system, el("pre", "", item.system));
      add(detail, system);
    }
    if (item.user_goal) {
      var goal = add(el("details", "user-goal"), el("summary", "", "user goal"));
      item.user_goal.forEach(function (part) {
        add(goal, el("h4", "", part.label));
        if (part.items) {
          var list = el("ul");
          part.items.forEach(function (text) { add(list, el("li", "", text)); });
          add(goal, list);
        } else {
          add(goal, el("p", "", part.text));
        }
      });
      add(detail, goal);
    }
    var chat = el("div", "chat");
    item.turns.forEach(function (turn) { add(chat, drawTurn(turn)); });
    add(detail, chat);
    if (item.unattributed && item.unattributed.length) {
      var loose = section("Row changes not matched to one call", "diff-loose");
      add(loose, drawDiff(item.unattributed));
      add(detail, loose);
    }
    if (item.verification) {
      var v = item.verification;
      var box = section("Verification", "verification");
      add(box, el("p", "", "final state " + show(v.final_state_sha256) + " · deterministic " +
        show(v.deterministic) + " · sandbox tier " + show(v.tier) + " · " + item.diff_rows + " row change(s)"));
      if (item.diff_rows) {
        add(box, el("p", "muted", "The record holds the net row diff of the whole dialogue; " +
          "each changed row is drawn under the write call whose arguments or output name it."));
      }
      add(detail, box);
    }
    if (item.judge) drawJudge(detail, item.judge);
    if (item.scenario) {
      var scenario = add(el("details", "scenario"), el("summary", "", "scenario (clock " + show(item.scenario.now) + ")"));
      add(scenario, el("pre", "", item.scenario.rows));
      add(detail, scenario);
    }
  }

  function drawTurn(turn) {
    var bubble = el("div", "bubble " + turn.role);
    add(bubble, el("div", "who", turn.role));
    if (turn.text) add(bubble, el("div", "text", turn.text));
    (turn.calls || []).forEach(function (call) { add(bubble, drawCall(call)); });
    return bubble;
  }

  function drawCall(call) {
    var box = el("div", "tool-call" + (call.error ? " error" : ""));
    box.setAttribute("data-tool", call.name);
    var head = add(el("div", "call-head"), el("span", "call-name", call.name + "()"));
    add(head, badge(call.error ? "error" : "ok", call.error ? "error" : "ok"));
    if (call.write === true) add(head, badge("write", "write"));
    if (call.write === false) add(head, badge("read-only", "read"));
    if (!call.executed) add(head, badge("not executed", "muted"));
    add(box, head);
    add(box, el("div", "part-label", "arguments"));
    add(box, el("pre", "args", call.arguments));
    add(box, el("div", "part-label", call.executed ? "output (as the sandbox returned it)" : "output"));
    add(box, el("pre", "output", call.output));
    if (call.diff && call.diff.length) {
      add(box, el("div", "part-label", "rows this call changed"));
      add(box, drawDiff(call.diff));
    }
    return box;
  }

  function drawDiff(rows) {
    var box = el("div", "state-diff");
    rows.forEach(function (row) {
      var entry = el("div", "diff-row op-" + row.op);
      add(entry, el("div", "diff-head", (row.op === "inserted" ? "+ " : row.op === "deleted" ? "− " : "~ ") +
        row.op + " · " + row.table));
      var table = el("table", "diff-table");
      var head = el("tr");
      var body = el("tr");
      if (row.op === "updated") {
        Object.keys(row.key).forEach(function (k) {
          add(head, el("th", "key", k));
          add(body, el("td", "key", show(row.key[k])));
        });
        Object.keys(row.after).forEach(function (k) {
          add(head, el("th", "", k));
          add(body, el("td", "changed", show(row.before[k]) + " → " + show(row.after[k])));
        });
      } else {
        Object.keys(row.row).forEach(function (k) {
          add(head, el("th", "", k));
          add(body, el("td", "", show(row.row[k])));
        });
      }
      add(table, head, body);
      add(entry, table);
      add(box, entry);
    });
    return box;
  }

  function drawJudge(detail, judge) {
    var box = section("Judge: " + (judge.passed ? "passed" : "failed"), "judge");
    var list = el("ul", "rubrics");
    judge.rubrics.forEach(function (r) {
      var li = add(el("li", r.passed ? "pass" : "fail"), badge(r.label + (r.passed ? " pass" : " fail"), r.passed ? "ok" : "error"));
      add(li, el("span", "", " " + r.reason));
      add(list, li);
    });
    add(box, list);
    add(detail, box);
  }

  function drawReject(detail, item) {
    var facts = "stopped at " + item.stage + " after " + show(item.attempts) + " attempt(s) · code " + item.code;
    add(detail, el("p", "facts", facts));
    add(detail, add(section("Reason"), el("pre", "reason", item.reason)));
    var box = section("Problems by location", "problems");
    item.locations.forEach(function (loc) {
      var group = add(el("div", "location"), el("div", "where", loc.label));
      loc.problems.forEach(function (i) { add(group, drawProblem(item.problems[i])); });
      add(box, group);
    });
    add(detail, box);
    if (item.draft) {
      var draft = section("Last draft", "draft");
      var lines = el("div", "draft-lines");
      item.draft.lines.forEach(function (line) {
        add(lines, el("pre", "draft-line" + (line.problems.length ? " flagged" : ""), line.text));
        line.problems.forEach(function (i) { add(lines, drawProblem(item.problems[i])); });
      });
      add(draft, lines);
      if (item.draft.unplaced.length) {
        add(draft, el("div", "where", "not located in the draft"));
        item.draft.unplaced.forEach(function (i) { add(draft, drawProblem(item.problems[i])); });
      }
      add(detail, draft);
    } else {
      add(detail, el("p", "muted", "The run store keeps no draft for a reject: each problem is shown at its location path in the last draft."));
    }
  }

  function drawProblem(problem) {
    var row = add(el("div", "problem"), badge(problem.code, "code"));
    add(row, el("span", "", " " + problem.message));
    return row;
  }

  function drawUsage(detail, usage) {
    if (!usage || !usage.length) return;
    var box = el("details", "usage");
    add(box, el("summary", "", "model usage"));
    var table = el("table", "num");
    add(table, add(el("tr"), el("th", "", "stage"), el("th", "", "calls"), el("th", "", "tokens"), el("th", "", "seconds")));
    usage.forEach(function (u) {
      add(table, add(el("tr"), el("td", "", u.stage), el("td", "", show(u.calls)), el("td", "", show(u.tokens)), el("td", "", show(u.seconds))));
    });
    add(box, table);
    add(detail, box);
  }

  function drawEnvironment(detail, env) {
    var box = section("Environment" + (env.name ? ": " + env.name : ""), "environment");
    if (env.error) add(box, el("p", "error-text", "Its files could not be read: " + env.error));
    if (env.description) add(box, el("p", "", env.description));
    var tools = el("div", "tools");
    env.tools.forEach(function (tool) {
      var t = add(el("details", "tool"), add(el("summary"), el("code", "", tool.name)));
      var summary = t.firstChild;
      if (tool.read_only) add(summary, badge("read-only", "read"));
      else if (env.saved) add(summary, badge("write", "write"));
      if (tool.confirm) add(summary, badge("confirm first", "code"));
      add(summary, el("span", "muted", " " + tool.description));
      add(t, el("pre", "", tool.parameters));
      add(tools, t);
    });
    add(box, tools);
    if (env.policy) {
      add(box, el("h4", "", "policy"));
      add(box, el("pre", "policy", env.policy));
    }
    if (env.schema_sql) {
      var schema = add(el("details", "schema"), el("summary", "", "database schema"));
      add(schema, el("pre", "", env.schema_sql));
      add(box, schema);
    }
    add(detail, box);
  }

  function drawSource(detail, source, docId) {
    var box = section("Source text: " + docId, "source");
    var text = el("div", "source-text");
    source.segments.forEach(function (segment) {
      if (!segment.ids.length) {
        add(text, document.createTextNode(segment.text));
        return;
      }
      var mark = el("mark", "", segment.text);
      mark.setAttribute("data-spans", " " + segment.ids.join(" ") + " ");
      mark.title = segment.ids.map(function (id) {
        var entry = source.entries[id];
        return entry.kind + ": " + entry.label;
      }).join("\n");
      add(text, mark);
    });
    if (source.has_spans) {
      var legend = el("div", "span-legend");
      add(legend, el("span", "muted", "where each came from: "));
      source.entries.forEach(function (entry) {
        var button = el("button", "span-key " + entry.kind, entry.kind + " " + entry.label);
        button.type = "button";
        if (!entry.span) {
          button.disabled = true;
          button.title = "not found in the source text";
        }
        button.addEventListener("click", function () { highlight(text, entry.id); });
        add(legend, button);
      });
      add(box, legend);
    }
    add(box, text);
    add(detail, box);
  }

  function highlight(text, id) {
    var marks = text.querySelectorAll("mark");
    var first = null;
    for (var i = 0; i < marks.length; i++) {
      var on = marks[i].getAttribute("data-spans").indexOf(" " + id + " ") !== -1;
      marks[i].classList.toggle("active", on);
      if (on && !first) first = marks[i];
    }
    if (first) first.scrollIntoView({ block: "center" });
  }

  return { el: el, add: add, badge: badge, drawRecord: drawRecord, drawReject: drawReject,
    drawUsage: drawUsage, drawEnvironment: drawEnvironment, drawSource: drawSource };
})();
