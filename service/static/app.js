// Review page for chain leaders: sign in with an API key, see the chains' gaps and shortlists,
// review each prospect with its explanation and outreach stage, export a shortlist; each chain's
// structure map (SVG drawn here, no library), a local firm's suppliers and customers (partners)
// and, for the general chain leader, the overview.
//
// Plain JavaScript, no dependencies, nothing fetched from outside the service. All data is put in
// the page with textContent (never innerHTML), so names and comments cannot inject markup.
"use strict";

(function () {
  const KEY_STORAGE = "chain-matcher.key"; // sessionStorage: gone when the tab closes
  const params = new URLSearchParams(window.location.search);
  const LANG = params.get("lang") === "zh" ? "zh" : "en";
  const L = window.I18N[LANG];
  const FACTORS = window.FACTOR_LABELS[LANG];
  const CHART_TOP = 10; // bars shown before "show all"
  const GAPS_TOP = 8;
  const NEW_SHORTLIST_TOP = 20;
  const SVG_NS = "http://www.w3.org/2000/svg";
  // Segment colours of the chain map, by status (the browser test checks these).
  const STATUS_FILL = { strong: "#1e8a4c", weak: "#b36b00", missing: "#c0392b" };

  const state = {
    me: null,
    chains: null, // chain_id -> ChainSummary
    reasons: null, // [ReviewReason]
    shortlist: null, // ShortlistDetail being viewed
    statusFilter: "all",
    region: null, // {general_leader, general_leader_zh} when the chain list names one
    partnersBack: null, // the map view a partners view was opened from
  };

  // ------------------------------------------------------------------ small helpers

  function t(key, vars) {
    let text = L[key];
    if (text === undefined) text = window.I18N.en[key] !== undefined ? window.I18N.en[key] : key;
    if (vars) {
      text = text.replace(/\{(\w+)\}/g, (m, name) => (vars[name] === undefined || vars[name] === null ? "" : String(vars[name])));
    }
    return text;
  }

  // el("div", {class: "x", dataset: {testid: "y"}, onclick: fn}, child, "text", ...)
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "dataset") Object.assign(node.dataset, value);
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else if (name === "text") node.textContent = value;
      else if (value === true) node.setAttribute(name, "");
      else node.setAttribute(name, String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // node.append() would print null as "null"; this skips absent children.
  function add(node, ...children) {
    for (const child of children.flat()) {
      if (child !== undefined && child !== null && child !== false) node.append(child);
    }
    return node;
  }

  function fmtScore(x) {
    return x === null || x === undefined || Number.isNaN(x) ? "–" : Number(x).toFixed(3);
  }

  function fmtSigned(x) {
    const s = Number(x).toFixed(3);
    return x > 0 ? "+" + s : s;
  }

  function fmtDate(s) {
    if (!s) return "";
    const d = new Date(s);
    if (Number.isNaN(d.getTime())) return String(s);
    return d.toLocaleString(LANG === "zh" ? "zh-CN" : "en-GB", { dateStyle: "medium", timeStyle: "short" });
  }

  function statusLabel(status) {
    return t("status_" + status);
  }

  function chainName(chainId) {
    const chain = state.chains && state.chains[chainId];
    if (!chain) return chainId;
    return LANG === "zh" && chain.name_zh ? chain.name_zh : chain.name;
  }

  // A chain's leaders as one line: ``leaders`` (``leaders_zh`` in Chinese) when the API gives
  // several, else the single ``leader``.
  function leadersOf(x) {
    const zh = LANG === "zh";
    const list = (zh && x.leaders_zh && x.leaders_zh.length ? x.leaders_zh : x.leaders) || (x.leader ? [x.leader] : []);
    return list.filter(Boolean);
  }

  function leadersLine(x) {
    const list = leadersOf(x);
    if (!list.length) return null;
    return t(list.length > 1 ? "chain_leaders" : "chain_leader") + ": " + list.join(LANG === "zh" ? "、" : ", ");
  }

  function generalLeaderOf(x) {
    if (!x) return "";
    return (LANG === "zh" && x.general_leader_zh) || x.general_leader || "";
  }

  function withLang(hash) {
    const query = LANG === "zh" ? "?lang=zh" : "";
    return window.location.pathname + query + (hash || "");
  }

  function flash(message, kind) {
    const box = document.getElementById("flash");
    box.textContent = message || "";
    box.className = "flash " + (kind || "error");
    box.hidden = !message;
    box.onclick = () => { box.hidden = true; }; // click to dismiss
    if (message && kind === "ok") {
      const shown = message;
      setTimeout(() => { if (box.textContent === shown) box.hidden = true; }, 4000);
    }
  }

  // ------------------------------------------------------------------ API access

  class ApiError extends Error {
    constructor(status, message, body) {
      super(message);
      this.status = status;
      this.body = body || null;
    }
  }

  function errorMessage(status, body) {
    const error = (body && body.error) || {};
    let message = error.message || (body && typeof body.detail === "string" ? body.detail : "") || "";
    if (error.fields && error.fields.length) {
      message += " (" + error.fields.map((f) => f.field + ": " + f.reason).join("; ") + ")";
    }
    const vars = { status, message, request_id: error.request_id || "–" };
    if (status === 0) return t("err_network");
    if (status === 401) return t("err_401");
    if (status === 403) return t("err_403", vars);
    if (status === 404) return t("err_404", vars);
    if (status === 409) return t("err_409");
    if (status === 413) return t("err_413", vars);
    if (status === 422) return t("err_422", vars);
    if (status === 429) return t("err_429");
    if (status === 503) return t("err_503", vars);
    if (status >= 500) return t("err_5xx", vars);
    return t("err_other", vars);
  }

  // Every call carries the key as a bearer token. A 401 anywhere ends the session.
  async function api(path, options) {
    options = options || {};
    const key = sessionStorage.getItem(KEY_STORAGE) || "";
    const headers = Object.assign({ Accept: options.accept || "application/json" }, options.headers || {});
    if (key) headers.Authorization = "Bearer " + key;
    const init = { method: options.method || "GET", headers, cache: "no-store", credentials: "omit" };
    if (options.body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(options.body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      throw new ApiError(0, t("err_network"));
    }
    if (!response.ok) {
      let body = null;
      try { body = await response.json(); } catch (err) { body = null; }
      const error = new ApiError(response.status, errorMessage(response.status, body), body);
      if (response.status === 401 && !options.signingIn) {
        signOut(error.message);
      }
      throw error;
    }
    if (options.raw) return response;
    return response.json();
  }

  // ------------------------------------------------------------------ sign-in

  function signOut(message) {
    sessionStorage.removeItem(KEY_STORAGE);
    state.me = null;
    state.chains = null;
    state.reasons = null;
    state.shortlist = null;
    if (window.location.hash) history.replaceState(null, "", withLang(""));
    renderSignIn(message);
  }

  function renderSignIn(message) {
    renderWho();
    flash("");
    const input = el("input", {
      id: "key", name: "key", type: "password", autocomplete: "off", spellcheck: "false",
      placeholder: t("signin_placeholder"), dataset: { testid: "key-input" }, "aria-describedby": "signin-error",
    });
    const error = el("p", { id: "signin-error", class: "error", role: "alert", dataset: { testid: "signin-error" } });
    if (message) error.textContent = message; else error.hidden = true;
    const button = el("button", { type: "submit", class: "primary", dataset: { testid: "signin-submit" } }, t("signin_submit"));
    const form = el("form", { class: "signin card", dataset: { testid: "signin-form" }, novalidate: true },
      el("h1", {}, t("signin_title")),
      el("p", { class: "muted" }, t("signin_intro")),
      el("label", { for: "key" }, t("signin_key")),
      input, error, button);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const key = input.value.trim();
      if (!key) {
        error.textContent = t("signin_empty");
        error.hidden = false;
        return;
      }
      button.disabled = true;
      error.hidden = true;
      button.textContent = t("signin_checking");
      sessionStorage.setItem(KEY_STORAGE, key);
      try {
        state.me = await api("/v1/me", { signingIn: true });
        input.value = "";
        route();
      } catch (err) {
        sessionStorage.removeItem(KEY_STORAGE);
        error.textContent = err.message;
        error.hidden = false;
        button.disabled = false;
        button.textContent = t("signin_submit");
      }
    });
    mount(form);
    input.focus();
  }

  function renderWho() {
    const who = document.getElementById("who");
    who.replaceChildren();
    const other = LANG === "zh" ? "en" : "zh";
    const langHref = window.location.pathname + (other === "zh" ? "?lang=zh" : "") + window.location.hash;
    if (state.me) {
      const me = state.me;
      const name = me.name || me.prefix;
      const chains = me.chains && me.chains.length ? me.chains.map(chainName).join(", ") : t("all_chains");
      who.append(
        el("span", { class: "identity", dataset: { testid: "identity" } },
          t("signed_in_as", { name }), " · ", t("role_" + me.role), " · ", chains),
      );
    }
    who.append(el("a", { href: langHref, class: "lang", dataset: { testid: "lang-switch" }, lang: other }, t("lang_other")));
    if (state.me) {
      who.append(el("button", { type: "button", class: "link", dataset: { testid: "sign-out" }, onclick: () => signOut() }, t("sign_out")));
    }
  }

  // ------------------------------------------------------------------ routing

  function mount(node) {
    const app = document.getElementById("app");
    app.replaceChildren(node);
  }

  function showError(err, where) {
    if (err.status === 401) return; // already back at sign-in
    const box = el("div", { class: "card error-card", role: "alert", dataset: { testid: "error" } }, err.message || String(err));
    if (where) where.replaceChildren(box); else mount(box);
  }

  async function ensureBasics() {
    if (!state.me) state.me = await api("/v1/me");
    if (!state.chains) {
      const list = await api("/v1/chains");
      state.chains = Object.fromEntries(list.chains.map((c) => [c.chain_id, c]));
      state.region = list.general_leader ? list : list.region || null;
    }
    if (!state.reasons) state.reasons = (await api("/v1/review-reasons")).reasons;
  }

  async function route() {
    flash("");
    if (!sessionStorage.getItem(KEY_STORAGE)) {
      renderSignIn();
      return;
    }
    mount(el("p", { class: "muted loading" }, t("loading")));
    try {
      await ensureBasics();
    } catch (err) {
      showError(err);
      renderWho();
      return;
    }
    renderWho();
    const match = window.location.hash.match(/^#\/shortlists\/(\d+)(?:\/items\/(\d+))?$/);
    const map = mapRoute();
    const partnersOf = partnersRoute();
    if (match) {
      await renderShortlist(Number(match[1]), match[2] ? Number(match[2]) : null);
    } else if (partnersOf) {
      await renderPartners(partnersOf);
    } else if (map) {
      await renderMap(map.chainId, map.segmentId);
    } else {
      await renderHome();
    }
  }

  function mapRoute() {
    const match = window.location.hash.match(/^#\/chains\/([^/]+)\/map(?:\/([^/]+))?$/);
    return match ? { chainId: decodeURIComponent(match[1]), segmentId: match[2] ? decodeURIComponent(match[2]) : null } : null;
  }

  function partnersRoute() {
    const match = window.location.hash.match(/^#\/enterprises\/([^/]+)\/partners$/);
    return match ? decodeURIComponent(match[1]) : null;
  }

  window.addEventListener("hashchange", () => {
    const map = mapRoute();
    // Selecting a segment of the map shown needs no redraw.
    if (map && state.map && state.map.chain_id === map.chainId && document.querySelector("[data-testid=chain-map]")) {
      if (map.segmentId) selectSegment(map.segmentId);
      return;
    }
    const match = window.location.hash.match(/^#\/shortlists\/(\d+)\/items\/(\d+)$/);
    // Switching prospects within the open shortlist needs no reload.
    if (match && state.shortlist && state.shortlist.shortlist_id === Number(match[1])) {
      // Re-rendering the prospect already shown would throw away a half-written review.
      if (state.selectedItem !== Number(match[2])) selectItem(Number(match[2]));
      return;
    }
    route();
  });

  // ------------------------------------------------------------------ home: chains, gaps, shortlists

  function myChainIds() {
    const me = state.me;
    if (me.role === "chain_leader") return me.chains;
    return Object.keys(state.chains); // staff, admin and the general chain leader see every chain
  }

  // Whether the key may do ``permission`` on a chain: chain leaders and a general chain leader act
  // on the chains their key names only.
  function may(permission, chainId) {
    const me = state.me;
    if (!(me.permissions || []).includes(permission)) return false;
    return !["chain_leader", "general_leader"].includes(me.role) || (me.chains || []).includes(chainId);
  }

  async function renderHome() {
    state.shortlist = null;
    document.title = t("app_title");
    state.map = null;
    const general = generalLeaderOf(state.region);
    const page = el("div", { class: "home", dataset: { testid: "home" } }, el("h1", {}, t("home_title")),
      general ? el("p", { class: "muted", dataset: { testid: "general-leader" } }, t("general_leader") + ": " + general) : null);
    mount(page);
    if ((state.me.permissions || []).includes("overview:read")) {
      const box = el("section", { class: "card overview", dataset: { testid: "overview" } },
        el("h2", {}, t("overview_title")), el("p", { class: "muted" }, t("loading")));
      page.append(box);
      loadOverview(box);
    }
    for (const chainId of myChainIds()) {
      const section = el("section", { class: "card chain", dataset: { testid: "chain", chain: chainId } });
      page.append(section);
      const chain = state.chains[chainId];
      const kind = chain && chain.kind ? t("chain_kind_" + chain.kind) : "";
      section.append(el("h2", {}, chainName(chainId), kind ? el("span", { class: "tag" }, kind) : null));
      const leaders = chain ? leadersLine(chain) : null;
      if (leaders) section.append(el("p", { class: "muted", dataset: { testid: "chain-leaders" } }, leaders));
      section.append(el("p", {}, el("a", { href: withLang("#/chains/" + encodeURIComponent(chainId) + "/map"),
        dataset: { testid: "open-map", chain: chainId } }, t("map_open"))));
      const columns = el("div", { class: "columns" });
      const listsBox = el("div", { class: "col" }, el("h3", {}, t("shortlists")), el("p", { class: "muted" }, t("loading")));
      const gapsBox = el("div", { class: "col" }, el("h3", {}, t("gaps")), el("p", { class: "muted" }, t("loading")));
      columns.append(listsBox, gapsBox);
      section.append(columns);
      loadShortlists(chainId, listsBox);
      loadGaps(chainId, gapsBox);
    }
  }

  async function loadShortlists(chainId, box) {
    const heading = box.firstChild;
    try {
      const page = await api("/v1/shortlists?chain=" + encodeURIComponent(chainId) + "&limit=100");
      box.replaceChildren(heading);
      if (!page.shortlists.length) {
        box.append(el("p", { class: "muted", dataset: { testid: "no-shortlists" } }, t("no_shortlists")));
        return;
      }
      const rows = page.shortlists.map((s) => {
        const done = s.counts.approved + s.counts.rejected + s.counts.deferred;
        const total = done + s.counts.pending;
        const href = withLang("#/shortlists/" + s.shortlist_id);
        return el("tr", { dataset: { testid: "shortlist-row", shortlistId: s.shortlist_id } },
          el("td", {}, el("a", { href, dataset: { testid: "shortlist-link" } }, s.title || s.gap_id)),
          el("td", {}, el("span", { class: "badge " + s.status }, statusLabel(s.status))),
          el("td", { class: "num" }, done + " / " + total),
          el("td", { class: "muted" }, fmtDate(s.created_at)));
      });
      box.append(el("table", { class: "grid" },
        el("thead", {}, el("tr", {}, el("th", {}, t("col_title")), el("th", {}, t("col_status")),
          el("th", { class: "num" }, t("col_progress")), el("th", {}, t("col_created")))),
        el("tbody", {}, rows)));
    } catch (err) {
      box.replaceChildren(heading);
      showError(err, box.appendChild(el("div")));
    }
  }

  async function loadGaps(chainId, box) {
    const heading = box.firstChild;
    try {
      const list = await api("/v1/gaps?chain=" + encodeURIComponent(chainId));
      box.replaceChildren(heading);
      const gaps = list.gaps.filter((g) => g.chain_id === chainId);
      if (!gaps.length) {
        box.append(el("p", { class: "muted" }, t("no_gaps")));
        return;
      }
      const canCreate = may("shortlists:create", chainId);
      const tbody = el("tbody");
      const table = el("table", { class: "grid", dataset: { testid: "gaps" } },
        el("thead", {}, el("tr", {}, el("th", {}, t("col_gap")), el("th", {}, t("col_kind")),
          el("th", { class: "num" }, t("col_severity")), el("th", { class: "num" }, t("col_strength")),
          canCreate ? el("th", {}) : null)),
        tbody);
      let expanded = false;
      const toggle = el("button", { type: "button", class: "link" });
      const draw = () => {
        const shown = expanded ? gaps : gaps.slice(0, GAPS_TOP);
        tbody.replaceChildren(...shown.map((g) => el("tr", { dataset: { testid: "gap-row", gapId: g.gap_id }, title: g.text },
          el("td", {}, g.title || g.gap_id),
          el("td", {}, el("span", { class: "badge gap-" + g.kind }, t("kind_" + g.kind))),
          el("td", { class: "num" }, Number(g.severity).toFixed(2)),
          el("td", { class: "num" }, g.strength === null || g.strength === undefined ? "–" : g.strength),
          canCreate ? el("td", { class: "num" }, el("button", {
            type: "button", class: "small-button", title: t("new_shortlist_title", { n: NEW_SHORTLIST_TOP }),
            dataset: { testid: "new-shortlist" }, onclick: (e) => createShortlist(g, e.target),
          }, t("new_shortlist"))) : null)));
        toggle.textContent = expanded ? t("show_fewer") : t("show_all", { n: gaps.length });
        toggle.hidden = gaps.length <= GAPS_TOP;
      };
      toggle.addEventListener("click", () => { expanded = !expanded; draw(); });
      draw();
      box.append(table, toggle);
    } catch (err) {
      box.replaceChildren(heading);
      showError(err, box.appendChild(el("div")));
    }
  }

  // A shortlist freezes the gap's current top N (scores, explanations, versions) for review.
  async function createShortlist(gap, button) {
    button.disabled = true;
    try {
      const created = await api("/v1/shortlists" + (LANG === "zh" ? "?lang=zh" : ""), {
        method: "POST", body: { gap_id: gap.gap_id, top: NEW_SHORTLIST_TOP },
      });
      window.location.hash = "#/shortlists/" + created.shortlist_id;
    } catch (err) {
      button.disabled = false;
      if (err.status !== 401) flash(err.message, "error");
    }
  }

  // ------------------------------------------------------------------ one shortlist

  function shortlistPath(id) {
    return "/v1/shortlists/" + id + (LANG === "zh" ? "?lang=zh" : "");
  }

  async function renderShortlist(id, itemId) {
    let detail;
    try {
      detail = await api(shortlistPath(id));
    } catch (err) {
      mount(el("div", {}, el("a", { href: withLang("#/"), class: "back" }, t("back")), el("div", { id: "sl-error" })));
      showError(err, document.getElementById("sl-error"));
      return;
    }
    state.shortlist = detail;
    document.title = (detail.title || detail.gap_id) + " · " + t("app_title");
    const gap = detail.gap || {};
    const header = el("section", { class: "card sl-header", dataset: { testid: "shortlist-header" } },
      el("a", { href: withLang("#/"), class: "back", dataset: { testid: "back" } }, t("back")),
      el("div", { class: "sl-title" },
        el("h1", { dataset: { testid: "shortlist-title" } }, detail.title || detail.gap_id),
        el("span", { class: "badge " + detail.status, dataset: { testid: "shortlist-status" } }, statusLabel(detail.status))),
      el("p", { class: "gap-text", title: gap.text || "" }, chainName(detail.chain_id), " · ", gap.title || detail.gap_id, gap.text ? " — " + gap.text : ""),
      el("p", { class: "muted small" },
        t("created_by", { when: fmtDate(detail.created_at), who: detail.created_by }), " · ",
        t("data_version"), ": ", detail.data_version, " · ", t("model_version"), ": ", detail.model_version),
      el("p", { class: "counts", dataset: { testid: "counts" } }, t("counts", detail.counts)),
      // Export only where the API would allow it (staff export the shortlists their key created).
      detail.can_export
        ? el("div", { class: "actions" },
          el("button", { type: "button", dataset: { testid: "export-csv" }, onclick: (e) => exportShortlist(detail, "csv", e.target) }, t("export_csv")),
          el("button", { type: "button", dataset: { testid: "export-xlsx" }, onclick: (e) => exportShortlist(detail, "xlsx", e.target) }, t("export_xlsx")))
        : el("p", { class: "muted small", dataset: { testid: "export-not-allowed" } }, t("export_not_allowed")));

    const filters = el("div", { class: "filters", role: "group" },
      ["all", "pending", "approved", "rejected", "deferred"].map((s) => el("button", {
        type: "button", class: "chip" + (state.statusFilter === s ? " on" : ""), dataset: { testid: "filter-" + s, status: s },
        onclick: () => { state.statusFilter = s; filters.querySelectorAll(".chip").forEach((c) => c.classList.toggle("on", c.dataset.status === s)); drawItemList(); },
      }, s === "all" ? t("filter_all") : statusLabel(s))));
    const list = el("ol", { class: "items", id: "items", dataset: { testid: "items" } });
    const detailPane = el("section", { class: "card detail", id: "detail", dataset: { testid: "detail" } },
      el("p", { class: "muted" }, t("select_prospect")));
    mount(el("div", { class: "shortlist", dataset: { testid: "shortlist", shortlistId: detail.shortlist_id } },
      header,
      el("div", { class: "split" },
        el("section", { class: "card list" }, el("h2", {}, t("prospects")), filters, list),
        detailPane)));
    drawItemList();
    const first = itemId || (detail.items.find((i) => i.status === "pending") || detail.items[0] || {}).item_id;
    if (first) selectItem(first);
  }

  function drawItemList() {
    const list = document.getElementById("items");
    if (!list || !state.shortlist) return;
    const selected = state.selectedItem;
    const items = state.shortlist.items.filter((i) => state.statusFilter === "all" || i.status === state.statusFilter);
    list.replaceChildren(...items.map((item) => {
      const href = withLang("#/shortlists/" + item.shortlist_id + "/items/" + item.item_id);
      const bar = el("span", { class: "scorebar" }, el("span", { class: "fill" }));
      bar.firstChild.style.width = Math.max(0, Math.min(1, item.score)) * 100 + "%";
      return el("li", { class: "item" + (item.item_id === selected ? " selected" : ""), dataset: { testid: "item", itemId: item.item_id, enterpriseId: item.enterprise_id, status: item.status } },
        el("a", { href, dataset: { testid: "item-link" } },
          el("span", { class: "rank" }, item.rank),
          el("span", { class: "name" }, item.name),
          el("span", { class: "score" }, fmtScore(item.score)),
          bar,
          el("span", { class: "badges" },
            outreachBadge(item),
            el("span", { class: "badge " + item.status, dataset: { testid: "item-status" } }, statusLabel(item.status)))));
    }));
  }

  // The prospect's latest outreach stage for the shortlist's gap (contacted → … → landed, declined, lost).
  function outreachBadge(item) {
    if (!item.outreach_stage) return null;
    return el("span", { class: "badge outreach outreach-" + item.outreach_stage, dataset: { testid: "item-outreach", stage: item.outreach_stage },
      title: t("outreach_title", { date: item.outreach_date || "" }) }, t("outreach_" + item.outreach_stage));
  }

  function selectItem(itemId) {
    const item = state.shortlist && state.shortlist.items.find((i) => i.item_id === itemId);
    const pane = document.getElementById("detail");
    if (!item || !pane) return;
    state.selectedItem = itemId;
    drawItemList();
    pane.replaceChildren(renderItem(item));
    pane.scrollTop = 0;
  }

  function section(title, testid, ...content) {
    return el("section", { class: "block", dataset: { testid } }, el("h3", {}, title), ...content);
  }

  function renderItem(item) {
    const ex = item.explanation || {};
    const node = el("article", { class: "item-detail", dataset: { testid: "item-detail", itemId: item.item_id, enterpriseId: item.enterprise_id } });
    node.append(
      el("header", { class: "item-head" },
        el("div", {},
          el("h2", { dataset: { testid: "item-name" } }, item.name),
          el("p", { class: "muted small" }, t("rank", { rank: item.rank }), " · ", t("enterprise_id"), ": ", item.enterprise_id,
            " · ", t("col_outreach"), ": ", item.outreach_stage ? t("outreach_" + item.outreach_stage) + " (" + (item.outreach_date || "") + ")" : t("outreach_none"))),
        el("div", { class: "bigscore", dataset: { testid: "item-score" } }, el("span", { class: "label" }, t("score")), fmtScore(item.score))),
    );
    if (item.excluded) node.append(el("p", { class: "note", dataset: { testid: "excluded" } }, t("excluded_note")));

    // Why: the contribution chart, then the plain-language reasons.
    const why = section(t("why_rank"), "why", contributionChart(ex));
    const reasons = ex.reasons || {};
    if ((reasons.positive || []).length || (reasons.negative || []).length) {
      why.append(el("div", { class: "reasons" },
        el("div", {}, el("h4", { class: "pos" }, t("reasons_for")), el("ul", {}, (reasons.positive || []).map((r) => el("li", {}, r)))),
        el("div", {}, el("h4", { class: "neg" }, t("reasons_against")), el("ul", {}, (reasons.negative || []).map((r) => el("li", {}, r))))));
    }
    node.append(why);

    const evidence = ex.evidence || [];
    node.append(section(t("evidence"), "evidence",
      evidence.length ? el("ul", { class: "evidence" }, evidence.map((s) => el("li", {}, el("q", {}, s)))) : el("p", { class: "muted" }, t("no_evidence"))));

    const partners = ex.local_partners || [];
    node.append(section(t("partners"), "partners",
      partners.length
        ? el("ul", { class: "plain" }, partners.map((p) => el("li", {}, p.name, " ", el("span", { class: "muted small" },
          [p.segment_id, t("similarity", { v: Number(p.similarity).toFixed(2) })].filter(Boolean).join(" · ")))))
        : el("p", { class: "muted" }, t("no_partners"))));

    const risks = ex.risk_flags || [];
    node.append(section(t("risks"), "risks",
      risks.length ? el("ul", { class: "plain risks" }, risks.map((r) => el("li", {}, r))) : el("p", { class: "muted" }, t("no_risks"))));

    if (ex.gap_closure) {
      const c = ex.gap_closure;
      node.append(section(t("gap_closure"), "gap-closure", el("p", {}, t("gap_closure_text", {
        segment: c.segment_id, before: c.strength_before, after: c.strength_after,
        status_before: t("kind_" + (c.status_before === "strong" ? "ok" : c.status_before)),
        status_after: t("kind_" + (c.status_after === "strong" ? "ok" : c.status_after)),
      }))));
    }
    if ((ex.eligible_policies || []).length) {
      node.append(section(t("policies"), "policies", el("ul", { class: "plain" }, ex.eligible_policies.map((p) => el("li", {}, p)))));
    }
    if ((ex.similar_landed || []).length) {
      node.append(section(t("similar_landed"), "similar-landed", el("ul", { class: "plain" }, ex.similar_landed.map((s) =>
        el("li", {}, s.name, " ", el("span", { class: "muted small" }, t("similarity", { v: Number(s.similarity).toFixed(2) })))))));
    }
    if ((ex.facts || []).length) {
      const details = el("details", { class: "block" }, el("summary", {}, t("facts")), el("ul", { class: "plain small" }, ex.facts.map((f) => el("li", {}, f))));
      node.append(details);
    }
    if (ex.freshness) {
      node.append(el("p", { class: "muted small" }, t("freshness", { date: ex.freshness.source_updated_at, snapshot: ex.freshness.snapshot_id })));
    }
    if (may("shortlists:review", state.shortlist.chain_id)) node.append(reviewForm(item));
    node.append(reviewHistory(item));
    return node;
  }

  // Horizontal bars around a zero line: green to the right raises the score, red to the left lowers it.
  function contributionChart(ex) {
    const all = (ex.contributions || []).filter((c) => Math.abs(c.contribution) > 1e-9)
      .sort((a, b) => Math.abs(b.contribution) - Math.abs(a.contribution));
    const wrap = el("div", { class: "chart-wrap" });
    if (!all.length) return wrap;
    // Each side of the zero line is as wide as its largest bar needs, on one common scale.
    const posMax = Math.max(0, ...all.map((c) => c.contribution));
    const negMax = Math.max(0, ...all.map((c) => -c.contribution));
    let expanded = false;
    const chart = el("div", { class: "chart", role: "img", dataset: { testid: "chart" }, "aria-label": t("chart_caption") });
    chart.style.setProperty("--neg-share", negMax / (posMax + negMax) + "fr");
    chart.style.setProperty("--pos-share", posMax / (posMax + negMax) + "fr");
    const toggle = el("button", { type: "button", class: "link" });
    const draw = () => {
      const shown = expanded ? all : all.slice(0, CHART_TOP);
      chart.replaceChildren(...shown.map((c) => {
        const positive = c.contribution > 0;
        const bar = el("span", { class: "bar " + (positive ? "pos" : "neg") });
        bar.style.width = (Math.abs(c.contribution) / (positive ? posMax : negMax)) * 100 + "%";
        return el("div", { class: "row", title: c.text, dataset: { testid: "bar", feature: c.feature, sign: positive ? "pos" : "neg" } },
          el("span", { class: "flabel" }, FACTORS[c.feature] || c.feature),
          el("span", { class: "half neg" }, positive ? null : bar),
          el("span", { class: "half pos" }, positive ? bar : null),
          el("span", { class: "fvalue " + (positive ? "pos" : "neg") }, fmtSigned(c.contribution)));
      }));
      toggle.textContent = expanded ? t("show_fewer") : t("show_all", { n: all.length });
      toggle.hidden = all.length <= CHART_TOP;
    };
    toggle.addEventListener("click", () => { expanded = !expanded; draw(); });
    draw();
    wrap.append(
      el("p", { class: "muted small" }, t("chart_caption")),
      chart, toggle,
      el("p", { class: "muted small" }, t("chart_sum", { base: Number(ex.base_value || 0).toFixed(3), output: Number(ex.model_output || 0).toFixed(3) })));
    return wrap;
  }

  function reasonLabel(reason) {
    return LANG === "zh" ? reason.label_zh : reason.label_en;
  }

  function reviewForm(item) {
    const form = el("form", { class: "review block", dataset: { testid: "review-form" }, novalidate: true });
    const verdicts = ["approve", "reject", "defer"];
    const current = { approved: "approve", rejected: "reject", deferred: "defer" }[item.status] || null;
    let verdict = null;
    const buttons = verdicts.map((v) => el("button", {
      type: "button", class: "verdict " + v, dataset: { testid: "verdict-" + v, verdict: v }, "aria-pressed": "false",
      onclick: () => { verdict = v; buttons.forEach((b) => { const on = b.dataset.verdict === v; b.classList.toggle("on", on); b.setAttribute("aria-pressed", String(on)); }); fillReasons(); message.hidden = true; },
    }, t("verdict_" + v)));
    const select = el("select", { id: "reason-" + item.item_id, name: "reason", dataset: { testid: "reason" } });
    const fillReasons = () => {
      const allowed = (state.reasons || []).filter((r) => !verdict || (r.verdicts || []).includes(verdict));
      const keep = select.value;
      select.replaceChildren(
        el("option", { value: "" }, verdict === "reject" ? t("reason_choose") : t("reason_none")),
        ...allowed.map((r) => el("option", { value: r.code }, reasonLabel(r) + (r.excludes ? " " + t("reason_excludes") : ""))));
      if (allowed.some((r) => r.code === keep)) select.value = keep;
    };
    fillReasons();
    const comment = el("textarea", { id: "comment-" + item.item_id, name: "comment", rows: "2", maxlength: "2000", placeholder: t("comment_placeholder"), dataset: { testid: "comment" } });
    const submit = el("button", { type: "submit", class: "primary", dataset: { testid: "submit-review" } }, t("submit_review"));
    const message = el("p", { class: "error", role: "alert", dataset: { testid: "review-message" }, hidden: true });
    // One idempotency key per intended review: a retry after a lost response is not recorded twice.
    let idempotencyKey = null;
    let lastBody = null;
    add(form,
      el("h3", {}, t("review")),
      current ? el("p", { class: "small", dataset: { testid: "current-verdict" } }, t("current_verdict", { verdict: t("verdict_" + current) })) : null,
      el("div", { class: "verdicts", role: "group" }, buttons),
      el("div", { class: "field" }, el("label", { for: select.id }, t("reason")), select),
      el("div", { class: "field" }, el("label", { for: comment.id }, t("comment")), comment),
      el("div", { class: "actions" }, submit), message);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      message.hidden = true;
      if (!verdict) { showMessage(t("err_verdict_required")); return; }
      if (verdict === "reject" && !select.value) { showMessage(t("err_reason_required")); select.focus(); return; }
      const body = { verdict, comment: comment.value, expected_version: item.version };
      if (select.value) body.reason_code = select.value;
      const bodyKey = JSON.stringify(body);
      if (bodyKey !== lastBody) { idempotencyKey = newIdempotencyKey(); lastBody = bodyKey; }
      submit.disabled = true;
      submit.textContent = t("saving");
      try {
        const result = await api("/v1/shortlists/" + item.shortlist_id + "/items/" + item.item_id + "/review" + (LANG === "zh" ? "?lang=zh" : ""), {
          method: "POST", body, headers: { "Idempotency-Key": idempotencyKey },
        });
        applyReview(result);
        flash(t("saved", { verdict: t("verdict_" + result.review.verdict) }), "ok");
      } catch (err) {
        submit.disabled = false;
        submit.textContent = t("submit_review");
        if (err.status === 409) {
          const currentItem = err.body && err.body.error && err.body.error.current;
          if (currentItem && currentItem.item_id === item.item_id && currentItem.explanation) {
            replaceItem(currentItem);
            selectItem(item.item_id);
            flash(t("err_409"), "error");
          } else {
            await refreshShortlist(item.item_id);
            flash(t("err_409"), "error");
          }
          return;
        }
        showMessage(err.message);
      }
    });
    function showMessage(text) {
      message.textContent = text;
      message.hidden = false;
    }
    return form;
  }

  function newIdempotencyKey() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
    const bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function reviewHistory(item) {
    const reviews = item.reviews || [];
    return section(t("history"), "history",
      reviews.length
        ? el("ol", { class: "history" }, reviews.map((r) => el("li", { dataset: { testid: "history-row", verdict: r.verdict } },
          t("history_line", { when: fmtDate(r.created_at), who: r.reviewer, verdict: t("verdict_" + r.verdict) }),
          r.reason_code ? el("span", { class: "tag" }, reasonText(r.reason_code)) : null,
          r.comment ? el("q", { class: "comment" }, r.comment) : null)))
        : el("p", { class: "muted", dataset: { testid: "no-history" } }, t("no_history")));
  }

  function reasonText(code) {
    const reason = (state.reasons || []).find((r) => r.code === code);
    return reason ? reasonLabel(reason) : code;
  }

  function replaceItem(updated) {
    const items = state.shortlist.items;
    const i = items.findIndex((x) => x.item_id === updated.item_id);
    // A 409's current item carries no outreach stage: keep the one shown.
    if (i >= 0) items[i] = Object.assign({ outreach_stage: items[i].outreach_stage, outreach_date: items[i].outreach_date }, updated);
  }

  function applyReview(result) {
    replaceItem(result.item);
    const detail = state.shortlist;
    detail.status = result.shortlist_status;
    const counts = { pending: 0, approved: 0, rejected: 0, deferred: 0 };
    for (const item of detail.items) counts[item.status] = (counts[item.status] || 0) + 1;
    detail.counts = counts;
    const status = document.querySelector("[data-testid=shortlist-status]");
    if (status) { status.textContent = statusLabel(detail.status); status.className = "badge " + detail.status; }
    const countLine = document.querySelector("[data-testid=counts]");
    if (countLine) countLine.textContent = t("counts", counts);
    selectItem(result.item.item_id);
  }

  async function refreshShortlist(itemId) {
    try {
      state.shortlist = await api(shortlistPath(state.shortlist.shortlist_id));
      drawItemList();
      selectItem(itemId);
    } catch (err) {
      flash(err.message, "error");
    }
  }

  function exportShortlist(detail, format, button) {
    return download("/v1/shortlists/" + detail.shortlist_id + "/export?format=" + format + (LANG === "zh" ? "&lang=zh" : ""),
      format, "shortlist-" + detail.shortlist_id + "." + format, button);
  }

  // Exports need the Authorization header, so they are fetched and handed to the browser as a blob.
  async function download(path, format, fallbackName, button) {
    const label = button.textContent;
    button.disabled = true;
    button.textContent = t("exporting");
    try {
      const response = await api(path, {
        raw: true, accept: format === "csv" ? "text/csv" : "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
      });
      const blob = await response.blob();
      const disposition = response.headers.get("Content-Disposition") || "";
      const named = disposition.match(/filename\*?=(?:UTF-8'')?"?([^";]+)"?/i);
      const file = named ? decodeURIComponent(named[1]) : fallbackName;
      const url = URL.createObjectURL(blob);
      const link = el("a", { href: url, download: file, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      flash(t("exported", { file }), "ok");
    } catch (err) {
      if (err.status !== 401) flash(err.message, "error");
    } finally {
      button.disabled = false;
      button.textContent = label;
    }
  }


  // ------------------------------------------------------------------ overview (general chain leader)

  async function loadOverview(box) {
    const heading = box.firstChild;
    try {
      const o = await api("/v1/overview");
      box.replaceChildren(heading);
      const button = el("button", { type: "button", dataset: { testid: "export-overview" } }, t("export_xlsx"));
      button.addEventListener("click", () => download("/v1/overview/export", "xlsx", "overview.xlsx", button));
      const general = generalLeaderOf(o.general_leader ? o : o.region) || generalLeaderOf(state.region);
      if (general) box.append(el("p", { class: "muted", dataset: { testid: "overview-general-leader" } }, t("general_leader") + ": " + general));
      box.append(el("p", { class: "muted small" }, t("overview_intro", { quarter: o.quarter_start, days_a: o.stale_approved_days, days_s: o.stale_shortlist_days })),
        el("div", { class: "actions" }, button));
      const line = (r, testid) => {
        const g = r.open_gaps, s = r.shortlists, i = r.items, f = r.funnel;
        const done = i.approved + i.rejected + i.deferred;
        const name = r.chain_id ? chainName(r.chain_id) : (LANG === "zh" && r.name_zh ? r.name_zh : r.name) + " · " + t("overview_district");
        return el("tr", { dataset: { testid, chain: r.chain_id || "" } },
          el("td", {}, r.chain_id ? el("a", { href: withLang("#/chains/" + encodeURIComponent(r.chain_id) + "/map") }, name) : el("strong", {}, name)),
          el("td", { class: "num", title: t("overview_gaps_title") }, g.high + " / " + g.medium + " / " + g.low),
          el("td", { class: "num" }, s.open + s.in_review + s.reviewed),
          el("td", { class: "num", dataset: { testid: "overview-reviewed" } }, done + " / " + (done + i.pending)),
          el("td", { class: "num", dataset: { testid: "overview-funnel" } }, [f.contacted, f.visited, f.negotiating, f.signed, f.landed].join(" → ")),
          el("td", { class: "num" }, r.declined),
          el("td", { class: "num" }, r.landed_this_quarter),
          el("td", { class: "num" + (r.stale_approved ? " warn" : "") }, r.stale_approved),
          el("td", { class: "num" + (r.stale_shortlists ? " warn" : "") }, r.stale_shortlists));
      };
      const rows = o.chains.map((r) => line(r, "overview-row"));
      if (o.district) rows.push(line(o.district, "overview-district"));
      box.append(el("table", { class: "grid overview-table" },
        el("thead", {}, el("tr", {}, ["ov_chain", "ov_gaps", "ov_shortlists", "ov_reviewed", "ov_funnel", "ov_declined",
          "ov_landed_q", "ov_stale_approved", "ov_stale_shortlists"].map((k, n) => el("th", { class: n ? "num" : "" }, t(k))))),
        el("tbody", {}, rows)));
    } catch (err) {
      box.replaceChildren(heading);
      showError(err, box.appendChild(el("div")));
    }
  }

  // ------------------------------------------------------------------ chain structure map (产业链图谱)

  function segmentName(s) {
    return LANG === "zh" && s.name_zh ? s.name_zh : s.name;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null) continue;
      if (name === "dataset") Object.assign(node.dataset, value);
      else if (name === "text") node.textContent = value;
      else node.setAttribute(name, String(value));
    }
    for (const child of children.flat()) if (child) node.append(child);
    return node;
  }

  function clip(text, n) {
    return text.length > n ? text.slice(0, n - 1) + "…" : text;
  }

  // Segments in columns upstream → downstream, an arrow per supplies link, colour by status.
  function drawMap(map) {
    const BOX_W = 220, BOX_H = 74, COL_W = 300, ROW_H = 96, TOP = 44, LEFT = 20;
    const columns = map.stages.map((stage) => map.segments.filter((s) => s.stage === stage));
    const place = {};
    columns.forEach((segments, col) => segments.forEach((s, row) => { place[s.segment_id] = { x: LEFT + col * COL_W, y: TOP + row * ROW_H }; }));
    const rows = Math.max(1, ...columns.map((c) => c.length));
    const width = LEFT * 2 + (map.stages.length - 1) * COL_W + BOX_W + 40;
    const height = TOP + rows * ROW_H + 10;
    const root = svg("svg", { viewBox: "0 0 " + width + " " + height, width, height, role: "img", class: "chain-map",
      "aria-label": t("map_title"), dataset: { testid: "map-svg" } });
    root.append(svg("defs", {}, svg("marker", { id: "map-arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7,
      orient: "auto-start-reverse" }, svg("path", { d: "M0,0 L10,5 L0,10 z", class: "map-arrow" }))));
    map.stages.forEach((stage, col) => root.append(svg("text", { x: LEFT + col * COL_W, y: 22, class: "map-stage",
      dataset: { testid: "map-stage", stage }, text: t("stage_" + stage) })));
    const links = svg("g", { class: "map-links" });
    for (const link of map.links) {
      const a = place[link.source], b = place[link.target];
      if (!a || !b) continue;
      const ay = a.y + BOX_H / 2, by = b.y + BOX_H / 2;
      let d;
      if (b.x > a.x) d = `M${a.x + BOX_W},${ay} C${a.x + BOX_W + 40},${ay} ${b.x - 40},${by} ${b.x},${by}`;
      else if (b.x === a.x) d = `M${a.x + BOX_W},${ay} C${a.x + BOX_W + 45},${ay} ${b.x + BOX_W + 45},${by} ${b.x + BOX_W},${by}`;
      else d = `M${a.x},${ay} C${a.x - 40},${ay} ${b.x + BOX_W + 40},${by} ${b.x + BOX_W},${by}`;
      links.append(svg("path", { d, class: "map-link", "marker-end": "url(#map-arrow)",
        dataset: { testid: "map-link", source: link.source, target: link.target } },
        svg("title", { text: segmentName(byId(map, link.source)) + " → " + segmentName(byId(map, link.target)) })));
    }
    root.append(links);
    for (const s of map.segments) {
      const p = place[s.segment_id];
      const gap = s.gaps[0];
      const node = svg("g", { transform: `translate(${p.x},${p.y})`, class: "map-seg", tabindex: 0, role: "button",
        dataset: { testid: "map-segment", segmentId: s.segment_id, status: s.status, strength: s.strength, gaps: s.gaps.length } },
        svg("title", { text: segmentName(s) + " — " + t("map_status_" + s.status) + ", " + t("map_strength", { n: s.strength }) }),
        svg("rect", { width: BOX_W, height: BOX_H, rx: 6, fill: STATUS_FILL[s.status] || "#5f6b7a", class: "map-box", dataset: { testid: "map-box" } }),
        svg("text", { x: 10, y: 22, class: "map-name", text: clip(segmentName(s), LANG === "zh" ? 14 : 22) }),
        svg("text", { x: 10, y: 42, class: "map-strength", dataset: { testid: "map-strength" },
          text: t("map_strength", { n: s.strength }) + " · " + t("map_status_" + s.status) }),
        gap ? svg("text", { x: 10, y: 62, class: "map-gap", dataset: { testid: "map-gap", gapId: gap.gap_id, severity: gap.severity },
          text: t("map_gap", { kind: t("kind_" + gap.kind), severity: Number(gap.severity).toFixed(2) }) + (s.gaps.length > 1 ? " +" + (s.gaps.length - 1) : "") }) : null);
      const open = () => { window.location.hash = "#/chains/" + encodeURIComponent(map.chain_id) + "/map/" + encodeURIComponent(s.segment_id); };
      node.addEventListener("click", open);
      node.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(); } });
      root.append(node);
    }
    return root;
  }

  function byId(map, segmentId) {
    return map.segments.find((s) => s.segment_id === segmentId) || { name: segmentId, name_zh: "" };
  }

  async function renderMap(chainId, segmentId) {
    state.shortlist = null;
    let map;
    try {
      map = await api("/v1/chains/" + encodeURIComponent(chainId) + "/map");
    } catch (err) {
      mount(el("div", {}, el("a", { href: withLang("#/"), class: "back" }, t("back")), el("div", { id: "map-error" })));
      showError(err, document.getElementById("map-error"));
      return;
    }
    state.map = map;
    const name = LANG === "zh" && map.name_zh ? map.name_zh : map.name;
    document.title = name + " · " + t("map_title");
    const legend = el("p", { class: "map-legend small", dataset: { testid: "map-legend" } },
      ["strong", "weak", "missing"].map((status) => {
        const swatch = el("span", { class: "swatch" });
        swatch.style.background = STATUS_FILL[status];
        return el("span", { class: "legend-item" }, swatch, t("map_status_" + status));
      }), el("span", { class: "muted" }, t("map_legend_links")));
    const others = map.other_gaps.length
      ? el("section", { class: "card", dataset: { testid: "map-other-gaps" } }, el("h3", {}, t("map_other_gaps")),
        el("ul", { class: "plain" }, map.other_gaps.map((g) => el("li", {}, g.title, " ",
          el("span", { class: "muted small" }, t("col_severity") + " " + Number(g.severity).toFixed(2))))))
      : null;
    const panel = el("section", { class: "card segment-panel", id: "segment-panel", dataset: { testid: "segment-panel" } },
      el("p", { class: "muted" }, t("map_select")));
    mount(el("div", { class: "map-page", dataset: { testid: "chain-map", chain: map.chain_id } },
      el("a", { href: withLang("#/"), class: "back", dataset: { testid: "back" } }, t("back")),
      el("h1", {}, name, " · ", t("map_title")),
      el("p", { class: "muted small", dataset: { testid: "map-leaders" } },
        [leadersLine(map.leaders || map.leader ? map : state.chains[map.chain_id] || {}), t("data_version") + ": " + map.version].filter(Boolean).join(" · ")),
      legend,
      el("div", { class: "card map-wrap" }, drawMap(map)),
      el("section", { class: "gap-panel", dataset: { testid: "gap-panel" } }),
      others, panel));
    announceChainMap(map.chain_id, segmentId);
    if (segmentId) selectSegment(segmentId, { announce: false });
  }

  // Other scripts (gaps.js) render into an empty gap panel under the map: it is replaced by a fresh
  // one and "chain-matcher:chain-map" is dispatched each time the map or its selected segment changes.
  function announceChainMap(chainId, segmentId) {
    const old = document.querySelector("[data-testid=gap-panel]");
    if (!old) return;
    const container = el("section", { class: "gap-panel", dataset: { testid: "gap-panel" } });
    old.replaceWith(container);
    document.dispatchEvent(new CustomEvent("chain-matcher:chain-map", {
      detail: { chainId, segmentId: segmentId || null, container },
    }));
  }

  async function selectSegment(segmentId, options) {
    const map = state.map;
    const panel = document.getElementById("segment-panel");
    if (!map || !panel) return;
    if (!options || options.announce !== false) announceChainMap(map.chain_id, segmentId);
    document.querySelectorAll("[data-testid=map-segment]").forEach((g) => g.classList.toggle("selected", g.dataset.segmentId === segmentId));
    panel.replaceChildren(el("p", { class: "muted" }, t("loading")));
    let detail;
    try {
      detail = await api("/v1/chains/" + encodeURIComponent(map.chain_id) + "/segments/" + encodeURIComponent(segmentId));
    } catch (err) {
      showError(err, panel);
      return;
    }
    if (!state.map || state.map.chain_id !== map.chain_id) return; // the user moved on meanwhile
    const s = detail.segment;
    const gaps = s.gaps.length
      ? el("ul", { class: "plain", dataset: { testid: "segment-gaps" } }, s.gaps.map((g) => el("li", { dataset: { gapId: g.gap_id } },
        el("span", { class: "badge gap-" + g.kind }, t("kind_" + g.kind)), " ", t("col_severity"), " ", Number(g.severity).toFixed(2),
        g.priority ? " · " + t("map_priority", { p: g.priority }) : "", g.note ? el("span", { class: "muted small" }, " — " + g.note) : null)))
      : el("p", { class: "muted" }, t("map_no_gaps"));
    const fmt = (x, digits) => (x === null || x === undefined ? "–" : Number(x).toFixed(digits));
    const pct = (x) => (x === null || x === undefined ? "–" : (x >= 0 ? "+" : "") + (x * 100).toFixed(0) + "%");
    const firms = detail.firms.length
      ? el("table", { class: "grid", dataset: { testid: "segment-firms" } },
        el("thead", {}, el("tr", {}, el("th", {}, t("col_name")), el("th", { class: "num", title: t("map_confidence_title") }, t("map_confidence")),
          el("th", { class: "num" }, t("map_employees")), el("th", { class: "num" }, t("map_growth")), el("th", {}, t("map_qualifications")))),
        el("tbody", {}, detail.firms.map((f) => el("tr", { dataset: { testid: "segment-firm", enterpriseId: f.enterprise_id } },
          el("td", {}, el("a", { href: withLang("#/enterprises/" + encodeURIComponent(f.enterprise_id) + "/partners"),
            title: t("partners_open_title"), dataset: { testid: "partners-link" },
            onclick: () => { state.partnersBack = window.location.hash; } }, f.name)), el("td", { class: "num" }, fmt(f.z, 2)), el("td", { class: "num" }, f.employees === null ? "–" : f.employees),
          el("td", { class: "num" }, pct(f.revenue_growth)), el("td", { class: "small" }, (f.qualifications || []).join(", "))))))
      : el("p", { class: "muted" }, t("map_no_firms"));
    let lists;
    if (!detail.shortlists_visible) lists = el("p", { class: "muted" }, t("map_shortlists_hidden"));
    else if (!detail.shortlists.length) lists = el("p", { class: "muted", dataset: { testid: "no-shortlists" } }, t("no_shortlists"));
    else {
      lists = el("table", { class: "grid" }, el("tbody", {}, detail.shortlists.map((x) => {
        const done = x.counts.approved + x.counts.rejected + x.counts.deferred;
        return el("tr", { dataset: { testid: "segment-shortlist", shortlistId: x.shortlist_id } },
          el("td", {}, el("a", { href: withLang("#/shortlists/" + x.shortlist_id) }, x.title || x.gap_id)),
          el("td", {}, el("span", { class: "badge " + x.status }, statusLabel(x.status))),
          el("td", { class: "num", dataset: { testid: "segment-shortlist-progress" } }, done + " / " + (done + x.counts.pending)));
      })));
    }
    panel.replaceChildren(el("div", { dataset: { testid: "segment-detail", segmentId: s.segment_id } },
      el("h2", {}, segmentName(s), " ", el("span", { class: "badge map-" + s.status }, t("map_status_" + s.status))),
      el("p", { class: "muted small" }, t("stage_" + s.stage), " · ", t("map_strength", { n: s.strength }),
        s.weak_below !== null && s.weak_below !== undefined ? " · " + t("map_weak_below", { n: s.weak_below }) : ""),
      el("h3", {}, t("gaps")), gaps,
      el("h3", {}, t("shortlists")), lists,
      el("h3", {}, t("map_firms", { n: detail.total_firms })), firms));
  }

  // ------------------------------------------------------------------ partners of a local firm (补链 / 延链 / 配套)

  const PARTNERS_TOP = 20;

  async function renderPartners(enterpriseId) {
    state.shortlist = null;
    const map = state.map;
    const back = el("a", { href: withLang(state.partnersBack || "#/"), class: "back", dataset: { testid: "back" } },
      state.partnersBack ? t("partners_back") : t("back"));
    const page = el("div", { class: "partners-page", dataset: { testid: "partners", enterpriseId } }, back,
      el("p", { class: "muted loading" }, t("loading")));
    mount(page);
    let body;
    try {
      body = await api("/v1/enterprises/" + encodeURIComponent(enterpriseId) + "/partners?top=" + PARTNERS_TOP + "&explain=true" +
        (LANG === "zh" ? "&lang=zh" : ""));
    } catch (err) {
      const box = el("div");
      page.replaceChildren(back, box);
      showError(err, box);
      return;
    }
    document.title = t("partners_title", { name: body.name }) + " · " + t("app_title");
    const names = {};
    for (const s of (map && map.segments) || []) names[s.segment_id] = segmentName(s);
    for (const n of body.neighbours.concat(body.firm_segments || [])) names[n.segment_id] = segmentName(n);
    const nameOf = (id) => names[id] || id;
    const table = (relation) => {
      const rows = body.results.filter((r) => r.relation === relation);
      if (!rows.length) return el("p", { class: "muted", dataset: { testid: "partners-none", relation } }, t("partners_none"));
      return el("table", { class: "grid partners", dataset: { testid: "partners-table", relation } },
        el("thead", {}, el("tr", {}, el("th", { class: "num" }, "#"), el("th", {}, t("col_name")), el("th", {}, t("col_segment")),
          el("th", { class: "num" }, t("score")), el("th", {}, t("col_reasons")))),
        el("tbody", {}, rows.map((r) => {
          const ex = r.explanation || {};
          const place = [r.city, r.province, r.country].filter(Boolean).join(", ");
          return el("tr", { dataset: { testid: "partner-row", enterpriseId: r.enterprise_id, relation: r.relation, segmentId: r.partner_segment_id } },
            el("td", { class: "num" }, r.rank),
            el("td", {}, el("strong", { dataset: { testid: "partner-name" } }, r.name),
              el("div", { class: "muted small" }, place),
              el("div", { class: "muted small" }, t("partners_similarity", { v: Number(r.firm_similarity).toFixed(2) }))),
            el("td", {}, nameOf(r.partner_segment_id),
              el("div", { class: "muted small" }, t("partners_via", { segment: nameOf(r.via) }))),
            el("td", { class: "num" }, fmtScore(r.score)),
            el("td", { class: "small" },
              el("ul", { class: "plain reasons-for", dataset: { testid: "partner-reasons-for" } }, (r.reasons.positive || []).map((x) => el("li", { class: "pos" }, "+ ", x))),
              el("ul", { class: "plain reasons-against", dataset: { testid: "partner-reasons-against" } }, (r.reasons.negative || []).map((x) => el("li", { class: "neg" }, "− ", x))),
              (ex.evidence || []).length ? el("q", { class: "evidence", dataset: { testid: "partner-evidence" } }, ex.evidence[0]) : null));
        })));
    };
    page.replaceChildren(back,
      el("h1", { dataset: { testid: "partners-title" } }, t("partners_title", { name: body.name })),
      el("p", { class: "muted" }, t("partners_intro")),
      el("p", { class: "muted small", dataset: { testid: "partners-own" } }, t("partners_own") + ": " + body.segments.map(nameOf).join(LANG === "zh" ? "、" : ", "),
        " · ", t("partners_total", { shown: body.results.length, total: body.total })),
      el("section", { class: "card", dataset: { testid: "partners-suppliers" } }, el("h2", {}, t("partners_suppliers")), table("supplier")),
      el("section", { class: "card", dataset: { testid: "partners-customers" } }, el("h2", {}, t("partners_customers")), table("customer")));
  }

  // ------------------------------------------------------------------ start

  // For the page's other scripts (gaps.js): the same texts, DOM helpers, signed-in fetch and banner.
  // refreshMap(): draw the map shown again from the API (gaps.js calls it after a gap changes, so the
  // segments' gap labels and the other-gaps list follow); resolves when drawn.
  function refreshMap() {
    const shown = mapRoute();
    return shown ? renderMap(shown.chainId, shown.segmentId) : Promise.resolve();
  }

  window.ChainMatcher = { t, el, add, api, flash, lang: LANG, me: () => state.me, refreshMap };

  document.documentElement.lang = LANG === "zh" ? "zh-CN" : "en";
  document.title = t("app_title");
  document.getElementById("brand").replaceChildren(t("brand"), el("span", { class: "sub" }, t("brand_sub")));
  route();
})();
