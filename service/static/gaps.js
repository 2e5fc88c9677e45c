// Gap management on the chain structure map: the chain's gaps (open and closed) and, for a leader
// of the chain or an admin, declaring a gap (a segment of the chain or a free-text need), editing
// its priority and note (and a free-text gap's text), closing and reopening it.
//
// app.js renders the map and, each time the map or its selected segment changes, an empty
// <section data-testid="gap-panel"> plus the "chain-matcher:chain-map" event; this script renders
// into that section with app.js's helpers (window.ChainMatcher: el, api, flash, lang). Texts are
// this script's own, in English and Chinese. Data goes in with textContent only (el()).
"use strict";

(function () {
  const CM = window.ChainMatcher;
  if (!CM) return;
  const { el, api, flash } = CM;
  const LANG = CM.lang === "zh" ? "zh" : "en";
  const PRIORITIES = ["high", "medium", "low"];
  const TEXT_MAX = 1000; // matcher/store/repo/gaps.py GAP_TEXT_MAX
  const NOTE_MAX = 2000; // GAP_NOTE_MAX

  const TEXTS = {
    en: {
      title: "Gaps of this chain",
      loading: "Loading gaps…",
      none: "No gaps.",
      col_gap: "Gap",
      col_kind: "Kind",
      col_severity: "Severity",
      col_priority: "Priority",
      col_status: "Status",
      col_note: "Note",
      col_changed: "Last change",
      kind_missing: "missing",
      kind_weak: "weak",
      kind_declared: "declared",
      status_open: "open",
      status_closed: "closed",
      priority_high: "high",
      priority_medium: "medium",
      priority_low: "low",
      priority_none: "–",
      origin_service: "declared in the service",
      origin_map: "from the chain map",
      by: "{who}, {when}",
      edit: "Edit",
      close: "Close",
      reopen: "Reopen",
      save: "Save",
      cancel: "Cancel",
      declare_title: "Declare a gap",
      declare_kind: "What is missing",
      declare_segment: "A segment of the chain",
      declare_text: "A need in your own words",
      segment: "Segment",
      need: "Need",
      need_placeholder: "e.g. Liquid cooling suppliers for AI data centres",
      priority: "Priority",
      note: "Note",
      declare: "Declare gap",
      text_label: "Text",
      declared_ok: "Gap declared: {title}",
      edited_ok: "Gap saved: {title}",
      closed_ok: "Gap closed: {title}",
      reopened_ok: "Gap reopened: {title}",
      empty_text: "Describe the need (it must not be empty).",
      too_long: "At most {n} characters.",
      conflict: "This gap changed meanwhile (now {status}); the list shows its current state.",
      segment_taken: "That segment is already a gap: change it in the list above.",
      read_only: "Only the chain's leaders and admins change its gaps.",
    },
    zh: {
      title: "本链缺口",
      loading: "正在加载缺口…",
      none: "暂无缺口。",
      col_gap: "缺口",
      col_kind: "类型",
      col_severity: "严重程度",
      col_priority: "优先级",
      col_status: "状态",
      col_note: "备注",
      col_changed: "最近修改",
      kind_missing: "缺失",
      kind_weak: "薄弱",
      kind_declared: "申报",
      status_open: "未关闭",
      status_closed: "已关闭",
      priority_high: "高",
      priority_medium: "中",
      priority_low: "低",
      priority_none: "–",
      origin_service: "在系统中申报",
      origin_map: "来自产业链图谱",
      by: "{who}，{when}",
      edit: "编辑",
      close: "关闭",
      reopen: "重新打开",
      save: "保存",
      cancel: "取消",
      declare_title: "申报缺口",
      declare_kind: "缺什么",
      declare_segment: "产业链中的某个环节",
      declare_text: "用文字描述的需求",
      segment: "环节",
      need: "需求",
      need_placeholder: "例如：为人工智能数据中心提供液冷设备的企业",
      priority: "优先级",
      note: "备注",
      declare: "申报缺口",
      text_label: "文字",
      declared_ok: "缺口已申报：{title}",
      edited_ok: "缺口已保存：{title}",
      closed_ok: "缺口已关闭：{title}",
      reopened_ok: "缺口已重新打开：{title}",
      empty_text: "请描述需求（不能为空）。",
      too_long: "最多 {n} 个字符。",
      conflict: "该缺口已被他人修改（当前状态：{status}），列表显示其最新状态。",
      segment_taken: "该环节已是缺口：请在上方列表中修改。",
      read_only: "只有本链的链长和管理员可以修改缺口。",
    },
  };

  function tr(key, vars) {
    let text = TEXTS[LANG][key];
    if (text === undefined) text = TEXTS.en[key] !== undefined ? TEXTS.en[key] : key;
    return text.replace(/\{(\w+)\}/g, (m, name) => (vars && vars[name] !== undefined && vars[name] !== null ? String(vars[name]) : ""));
  }

  function when(s) {
    if (!s) return "";
    const d = new Date(s);
    if (Number.isNaN(d.getTime())) return String(s);
    return d.toLocaleString(LANG === "zh" ? "zh-CN" : "en-GB", { dateStyle: "medium", timeStyle: "short" });
  }

  function gapsPath(chainId, gapId, action) {
    let path = "/v1/chains/" + encodeURIComponent(chainId) + "/gaps";
    if (gapId) path += "/" + encodeURIComponent(gapId);
    if (action) path += "/" + action;
    return path;
  }

  function segmentName(s) {
    return LANG === "zh" && s.name_zh ? s.name_zh : s.name;
  }

  function priorityLabel(p) {
    return p ? tr("priority_" + p) : tr("priority_none");
  }

  function prioritySelect(current, testid) {
    const select = el("select", { dataset: { testid } });
    for (const p of PRIORITIES) {
      select.append(el("option", { value: p, selected: p === current }, tr("priority_" + p)));
    }
    return select;
  }

  // A text the service would refuse, said before sending (the service checks again).
  function textProblem(value, max, required) {
    if (required && !value.trim()) return tr("empty_text");
    if (value.length > max) return tr("too_long", { n: max });
    return null;
  }

  // Runs a change; on success re-renders the panel and says so, on failure says why (a 409 also
  // re-renders: the list then shows the gap's current state).
  async function change(view, request, okKey) {
    let body;
    try {
      body = await api(request.path, { method: request.method, body: request.body, headers: request.headers });
    } catch (err) {
      if (err.status === 409) {
        const current = err.body && err.body.error && err.body.error.current;
        if (request.method === "POST" && !request.path.match(/\/(close|reopen)$/)) flash(tr("segment_taken"));
        else flash(current && current.status ? tr("conflict", { status: tr("status_" + current.status) }) : err.message);
        await render(view);
        return;
      }
      flash(err.message);
      return;
    }
    // The whole map again (its segments' gap labels and other-gaps list change too); the panel is
    // drawn anew when the map announces it.
    if (window.ChainMatcher.refreshMap) await window.ChainMatcher.refreshMap();
    else await render(view);
    flash(tr(okKey, { title: body.gap.title }), "ok");
  }

  function gapRow(view, gap, segments) {
    const segment = gap.segment_id ? segments[gap.segment_id] : null;
    const title = segment ? segmentName(segment) : gap.title;
    const changed = gap.updated_by ? tr("by", { who: gap.updated_by, when: when(gap.updated_at) }) : tr("origin_map");
    const cells = [
      el("td", {}, el("strong", { dataset: { testid: "gap-title" } }, title),
        gap.segment_id || gap.text === title ? null : el("div", { class: "muted small" }, gap.text.length > 160 ? gap.text.slice(0, 160) + "…" : gap.text),
        el("div", { class: "muted small" }, gap.gap_id)),
      el("td", {}, el("span", { class: "badge gap-" + gap.kind }, tr("kind_" + gap.kind))),
      el("td", { class: "num" }, Number(gap.severity).toFixed(2)),
      el("td", { dataset: { testid: "gap-priority" } }, priorityLabel(gap.priority)),
      el("td", {}, el("span", { class: "badge " + (gap.status === "closed" ? "rejected" : "approved"), dataset: { testid: "gap-status" } },
        tr("status_" + gap.status))),
      el("td", { class: "small", dataset: { testid: "gap-note" } }, gap.note || ""),
      el("td", { class: "small muted" }, changed),
    ];
    const row = el("tr", { dataset: { testid: "gap-row", gapId: gap.gap_id, status: gap.status } }, cells);
    if (view.canManage) {
      const toggle = gap.status === "closed"
        ? el("button", { type: "button", class: "small-button", dataset: { testid: "gap-reopen" },
          onclick: () => change(view, { method: "POST", path: gapsPath(view.chainId, gap.gap_id, "reopen") }, "reopened_ok") }, tr("reopen"))
        : el("button", { type: "button", class: "small-button", dataset: { testid: "gap-close" },
          onclick: () => change(view, { method: "POST", path: gapsPath(view.chainId, gap.gap_id, "close") }, "closed_ok") }, tr("close"));
      const edit = el("button", { type: "button", class: "small-button", dataset: { testid: "gap-edit" },
        onclick: () => row.replaceWith(editRow(view, gap, row, cells.length + 1)) }, tr("edit"));
      row.append(el("td", {}, edit, " ", toggle));
    }
    return row;
  }

  function editRow(view, gap, shownRow, span) {
    const priority = prioritySelect(gap.priority || "medium", "gap-edit-priority");
    const note = el("input", { type: "text", value: gap.note || "", maxlength: NOTE_MAX, dataset: { testid: "gap-edit-note" } });
    const text = gap.segment_id ? null : el("textarea", { rows: 2, cols: 50, maxlength: TEXT_MAX, dataset: { testid: "gap-edit-text" } });
    if (text) text.value = gap.text;
    const form = el("form", { class: "gap-edit", dataset: { testid: "gap-edit-form" } },
      el("label", {}, tr("priority"), " ", priority), " ",
      el("label", {}, tr("note"), " ", note), " ",
      text ? el("label", {}, tr("text_label"), " ", text) : null, " ",
      el("button", { type: "submit", class: "primary small-button", dataset: { testid: "gap-edit-save" } }, tr("save")), " ",
      el("button", { type: "button", class: "small-button", onclick: () => row.replaceWith(shownRow) }, tr("cancel")));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const problem = (text && textProblem(text.value, TEXT_MAX, true)) || textProblem(note.value, NOTE_MAX, false);
      if (problem) {
        flash(problem);
        return;
      }
      const body = { priority: priority.value, note: note.value };
      if (text) body.text = text.value;
      change(view, { method: "PATCH", path: gapsPath(view.chainId, gap.gap_id), body }, "edited_ok");
    });
    const row = el("tr", { dataset: { testid: "gap-row-editing", gapId: gap.gap_id } }, el("td", { colspan: span }, form));
    return row;
  }

  function declareForm(view, segments, gaps) {
    // Segments already an open gap are changed in the list, not declared again.
    const taken = new Set(gaps.filter((g) => g.segment_id && g.status === "open").map((g) => g.segment_id));
    const free = Object.values(segments).filter((s) => !taken.has(s.segment_id));
    const name = "gap-kind-" + view.chainId;
    const bySegment = el("input", { type: "radio", name, value: "segment", checked: free.length > 0, disabled: !free.length,
      dataset: { testid: "gap-kind-segment" } });
    const byText = el("input", { type: "radio", name, value: "text", checked: !free.length, dataset: { testid: "gap-kind-text" } });
    const segment = el("select", { dataset: { testid: "gap-segment" } },
      free.map((s) => el("option", { value: s.segment_id, selected: s.segment_id === view.segmentId }, segmentName(s))));
    const need = el("textarea", { rows: 2, cols: 60, maxlength: TEXT_MAX, placeholder: tr("need_placeholder"), dataset: { testid: "gap-text" } });
    const priority = prioritySelect("medium", "gap-priority-input");
    const note = el("input", { type: "text", maxlength: NOTE_MAX, dataset: { testid: "gap-note-input" } });
    // One key per form shown: a double click or a resent request declares one gap (the form is
    // drawn anew, with a new key, after a declaration).
    const idempotencyKey = "gap-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 12);
    const segmentLine = el("p", {}, el("label", {}, tr("segment"), " ", segment));
    const needLine = el("p", {}, el("label", {}, tr("need"), " ", need));
    const sync = () => {
      segmentLine.hidden = !bySegment.checked;
      needLine.hidden = !byText.checked;
    };
    bySegment.addEventListener("change", sync);
    byText.addEventListener("change", sync);
    sync();
    const form = el("form", { class: "gap-declare", dataset: { testid: "gap-declare-form" } },
      el("h3", {}, tr("declare_title")),
      el("p", {}, tr("declare_kind"), ": ", el("label", {}, bySegment, " ", tr("declare_segment")), " ",
        el("label", {}, byText, " ", tr("declare_text"))),
      segmentLine, needLine,
      el("p", {}, el("label", {}, tr("priority"), " ", priority), " ", el("label", {}, tr("note"), " ", note)),
      el("button", { type: "submit", class: "primary", dataset: { testid: "gap-declare" } }, tr("declare")));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const body = { priority: priority.value, note: note.value };
      if (byText.checked) {
        const problem = textProblem(need.value, TEXT_MAX, true);
        if (problem) {
          flash(problem);
          return;
        }
        body.text = need.value;
      } else {
        body.segment_id = segment.value;
      }
      const problem = textProblem(note.value, NOTE_MAX, false);
      if (problem) {
        flash(problem);
        return;
      }
      change(view, { method: "POST", path: gapsPath(view.chainId), body, headers: { "Idempotency-Key": idempotencyKey } }, "declared_ok");
    });
    return form;
  }

  async function render(view) {
    const { container } = view;
    let body;
    try {
      body = await api(gapsPath(view.chainId));
    } catch (err) {
      flash(err.message);
      container.replaceChildren();
      return;
    }
    if (!container.isConnected) return; // the user moved on meanwhile
    view.canManage = body.can_manage;
    const segments = Object.fromEntries(body.segments.map((s) => [s.segment_id, s]));
    const head = [tr("col_gap"), tr("col_kind"), tr("col_severity"), tr("col_priority"), tr("col_status"), tr("col_note"), tr("col_changed")];
    if (view.canManage) head.push("");
    const table = body.gaps.length
      ? el("table", { class: "grid", dataset: { testid: "gap-table" } },
        el("thead", {}, el("tr", {}, head.map((h, i) => el("th", { class: i === 2 ? "num" : null }, h)))),
        el("tbody", {}, body.gaps.map((g) => gapRow(view, g, segments))))
      : el("p", { class: "muted" }, tr("none"));
    container.replaceChildren(el("div", { class: "card", dataset: { testid: "gap-manager", chain: body.chain_id } },
      el("h2", {}, tr("title")),
      table,
      view.canManage ? declareForm(view, segments, body.gaps) : el("p", { class: "muted small", dataset: { testid: "gap-read-only" } }, tr("read_only"))));
  }

  document.addEventListener("chain-matcher:chain-map", (event) => {
    const { chainId, segmentId, container } = event.detail || {};
    if (!chainId || !container) return;
    container.replaceChildren(el("p", { class: "muted" }, tr("loading")));
    render({ chainId, segmentId: segmentId || null, container, canManage: false });
  });
})();
