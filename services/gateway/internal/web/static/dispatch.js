// The dispatcher's console: today's and tomorrow's rounds, checking suppliers' parcels in at the
// gate (with shortages), planning a round's routes, each courier's route, progress by building
// and by courier (live), and handing a sick courier's stops to others.
'use strict';

(async () => {
  const { L, $, el, quantityText, when, api, newRequestId, outcomeUnknown, showMessage, showError, chip, session, topBar } = window.Doorstep;
  const me = await session('DISPATCHER');
  if (!me) return;
  topBar(me, `${L('调度', 'Dispatcher')} ${me.name || me.account_id}`);

  const ROUND_STATES = { OPEN: ['收件中', 'Open'], CLOSED: ['已截止', 'Closed'], PLANNED: ['已规划', 'Planned'], DONE: ['已完成', 'Done'] };
  const state = { round: null, rounds: [], gate: [], couriers: [], pending: new Map(), progress: null };
  function requestId(key) {
    if (!state.pending.has(key)) state.pending.set(key, newRequestId());
    return state.pending.get(key);
  }
  const settle = (key, res) => { if (!outcomeUnknown(res)) state.pending.delete(key); };
  const addressText = (a) => `${a.building}${L('栋', '-')}${a.unit}${L('单元', '-')}${a.floor}${L('楼', 'F-')}${a.room}`;

  // loadRounds shows today's rounds and tomorrow's: once today's last cutoff has passed, the
  // parcels checked in at the gate join tomorrow's first round, and the dispatcher plans it.
  // The list is built before it is shown: a refresh overlapping another (after a check-in, and
  // the timer's) replaces the rounds rather than adding tomorrow's twice.
  async function loadRounds() {
    const today = await api('GET', '/api/v1/dispatch/rounds');
    if (!today || !today.ok) { const m = el('div', { class: 'message' }); showError(m, today); $('rounds').replaceChildren(m); return; }
    let rounds = today.data.rounds;
    if (rounds.length) {
      const next = new Date(`${rounds[0].date}T00:00:00Z`);
      next.setUTCDate(next.getUTCDate() + 1);
      const tomorrow = await api('GET', `/api/v1/dispatch/rounds?date=${next.toISOString().slice(0, 10)}`);
      if (tomorrow && tomorrow.ok) rounds = rounds.concat(tomorrow.data.rounds);
    }
    state.rounds = rounds;
    if (!state.round || !state.rounds.some((r) => r.round_id === state.round)) {
      const open = state.rounds.find((r) => r.state === 'OPEN' || r.state === 'CLOSED') || state.rounds[0];
      if (open) selectRound(open.round_id, false);
    }
    renderRounds();
  }

  function renderRounds() {
    $('rounds').replaceChildren(...state.rounds.map((r) => {
      const [zh, en] = ROUND_STATES[r.state] || [r.state, r.state];
      return el('button', {
        type: 'button', class: r.round_id === state.round ? 'round on' : 'round', 'data-round': r.round_id,
        'aria-pressed': String(r.round_id === state.round), onclick: () => selectRound(r.round_id, true),
      }, el('strong', null, r.slot === 'am' ? L('上午', 'Morning') : r.slot === 'pm' ? L('下午', 'Afternoon') : r.slot), ' ',
      L(zh, en), ' · ', r.parcels, ' ', L('件', 'parcels'), el('div', { class: 'muted' }, `${L('截止', 'Cutoff')} ${when(r.cutoff)}`));
    }));
  }

  function selectRound(id, load) {
    state.round = id;
    $('selected-round').textContent = `${L('轮次', 'Round')}: ${id}`;
    renderRounds();
    if (load) { loadRoutes(); watchProgress(); }
  }

  async function loadGate() {
    const res = await api('GET', '/api/v1/dispatch/gate');
    if (res && (res.status === 403 || res.status === 501)) {
      // The gate list is not open to this account: parcels are checked in by their labels.
      state.gate = [];
    } else if (!res || !res.ok) {
      const m = el('div', { class: 'message' });
      showError(m, res);
      $('gate').replaceChildren(m);
      return;
    } else {
      // The list is the order service's, which hears of a check-in a moment after dispatch
      // made it: a parcel this page checked in is not offered again in between.
      state.gate = res.data.parcels.filter((p) => !checkedIn.has(p.parcel_id));
    }
    const listed = new Set(state.gate.map((p) => p.parcel_id));
    const extra = [...typed].filter((id) => !listed.has(id))
      .map((id) => ({ parcel_id: id, supplier_id: '', lines: [], address: { building: '?', unit: '?', floor: '?', room: '?' } }));
    const all = state.gate.concat(extra);
    $('gate').replaceChildren(...(all.length ? all.map(renderGateParcel) : [el('p', { class: 'muted' }, L('没有列出的包裹：请扫描或输入包裹号', 'No parcels listed: scan or type parcel ids below'))]));
    $('checkin').disabled = all.length === 0;
  }

  function renderGateParcel(p) {
    const item = el('select', { 'data-short-item': p.parcel_id }, el('option', { value: '' }, L('缺件商品', 'Item short')),
      p.lines.map((l) => el('option', { value: l.item_id }, l.name)));
    const missing = el('input', { type: 'number', min: '0', value: '0', class: 'num', 'aria-label': L('缺少数量', 'Missing'), 'data-short-missing': p.parcel_id });
    const damaged = el('input', { type: 'number', min: '0', value: '0', class: 'num', 'aria-label': L('破损数量', 'Damaged'), 'data-short-damaged': p.parcel_id });
    const note = el('input', { type: 'text', placeholder: L('备注', 'Note'), 'data-short-note': p.parcel_id });
    return el('div', { class: 'order', 'data-gate-parcel': p.parcel_id },
      el('label', { class: 'check' }, el('input', { type: 'checkbox', checked: true, 'data-gate': p.parcel_id }),
        ' ', addressText(p.address), ' · ', p.supplier_id, ' ', el('span', { class: 'order-id' }, '…' + p.parcel_id.slice(-6))),
      el('div', { class: 'lines' }, p.lines.map((l) => `${l.name} ${quantityText(l.weighed, l.confirmed_quantity || l.quantity, l.unit)}`).join(L('、', ', '))),
      el('details', null, el('summary', null, L('登记缺件/破损', 'Record a shortage')),
        el('div', { class: 'actions wrap' }, item, el('label', { class: 'inline' }, L('缺', 'Missing'), ' ', missing),
          el('label', { class: 'inline' }, L('损', 'Damaged'), ' ', damaged), note)));
  }

  // A parcel id typed or scanned from its label joins the list, for a parcel the suppliers'
  // lists do not show (or when they cannot be read).
  const typed = new Set();
  // checkedIn holds the parcels this page checked in; a checked-in parcel never waits at the
  // gate again.
  const checkedIn = new Set();
  function addTyped(e) {
    e.preventDefault();
    const id = $('gate-parcel').value.trim();
    if (!id) return;
    typed.add(id);
    $('gate-parcel').value = '';
    if (!document.querySelector(`[data-gate="${CSS.escape(id)}"]`)) {
      $('gate').append(renderGateParcel({ parcel_id: id, supplier_id: '', lines: [], address: { building: '?', unit: '?', floor: '?', room: '?' } }));
    }
    $('checkin').disabled = false;
  }

  async function checkIn() {
    const ids = [...document.querySelectorAll('[data-gate]')].filter((c) => c.checked).map((c) => c.dataset.gate);
    const msg = $('checkin-message');
    if (!ids.length) { showMessage(msg, 'error', L('请先勾选包裹', 'Select parcels first')); return; }
    const shortages = [];
    for (const id of ids) {
      const item = document.querySelector(`[data-short-item="${CSS.escape(id)}"]`).value;
      if (!item) continue;
      shortages.push({
        parcel_id: id, item_id: item,
        missing_quantity: Number(document.querySelector(`[data-short-missing="${CSS.escape(id)}"]`).value) || 0,
        damaged_quantity: Number(document.querySelector(`[data-short-damaged="${CSS.escape(id)}"]`).value) || 0,
        note: document.querySelector(`[data-short-note="${CSS.escape(id)}"]`).value,
      });
    }
    const body = { parcel_ids: ids, shortages };
    const key = `checkin:${JSON.stringify(body)}`;
    body.request_id = requestId(key);
    $('checkin').disabled = true;
    const res = await api('POST', '/api/v1/dispatch/checkin', body);
    settle(key, res);
    $('checkin').disabled = false;
    if (!res || !res.ok) { showError(msg, res); return; }
    const done = res.data.results.filter((r) => r.checked_in);
    const failed = res.data.results.filter((r) => !r.checked_in);
    showMessage(msg, failed.length ? 'error' : 'ok', `${L('已签收', 'Checked in')} ${done.length}${failed.length ? `, ${L('未签收', 'not checked in')} ${failed.length}` : ''}`,
      failed.map((r) => `…${r.parcel_id.slice(-6)}: ${r.error}`));
    for (const r of done) { typed.delete(r.parcel_id); checkedIn.add(r.parcel_id); }
    if (done.length) selectRound(done[0].round_id, true);
    loadGate();
    loadRounds();
  }

  async function plan() {
    const msg = $('plan-message');
    if (!state.round) { showMessage(msg, 'error', L('请先选择轮次', 'Select a round first')); return; }
    // Planning a round without parcels ends it (parcels checked in later join the next one): a
    // tired hand on the wrong round is asked first. The counts are read afresh, so that parcels
    // checked in a moment ago (their list may still be on its way) count.
    await loadRounds();
    const selected = state.rounds.find((r) => r.round_id === state.round);
    if (selected && selected.parcels === 0 && !window.confirm(L('本轮没有包裹：规划后本轮即结束，之后签收的包裹进入下一轮。仍要规划吗？',
      'This round has no parcels: planning it ends the round, and parcels checked in later join the next one. Plan it anyway?'))) {
      showMessage(msg, '', L('未规划', 'Not planned'));
      return;
    }
    const key = `plan:${state.round}`;
    $('plan').disabled = true;
    showMessage(msg, '', L('正在规划…', 'Planning…'));
    const res = await api('POST', `/api/v1/dispatch/rounds/${encodeURIComponent(state.round)}/plan`, { request_id: requestId(key) });
    settle(key, res);
    $('plan').disabled = false;
    if (!res || !res.ok) { showError(msg, res); return; }
    const c = res.data.cost;
    const lb = res.data.lower_bound;
    showMessage(msg, 'ok', `${L('已规划', 'Planned')}: ${res.data.routes.length} ${L('条路线', 'route(s)')} · ${c.metres} m / ${c.floors} ${L('层', 'floors')} / ${c.trips} ${L('趟', 'trips')} · ${L('下界', 'lower bound')} ${lb.metres} m / ${lb.floors} ${L('层', 'floors')}`);
    renderRoutes(res.data.routes);
    loadRounds();
    watchProgress();
  }

  async function loadRoutes() {
    if (!state.round) return;
    const res = await api('GET', `/api/v1/dispatch/rounds/${encodeURIComponent(state.round)}/routes`);
    if (res && res.ok) renderRoutes(res.data.routes);
  }

  function renderRoutes(routes) {
    $('routes').replaceChildren(...routes.map((r) => el('div', { class: 'order', 'data-route': r.route_id, 'data-courier': r.courier_id },
      el('div', { class: 'order-head' }, el('strong', null, r.courier_id), el('span', { class: 'muted' },
        `${r.stops.length} ${L('户', 'stops')} · ${r.cost.metres} m · ${r.cost.floors} ${L('层', 'floors')} · ${r.cost.trips} ${L('趟', 'trips')} · v${r.version}`)),
      el('ol', { class: 'stops' }, r.stops.map((s) => el('li', null, `${L('第', 'Trip ')}${s.trip}${L('趟', '')} · ${addressText(s.address)} · ${s.parcel_ids.length} ${L('件', 'parcel(s)')}`,
        s.priority ? el('span', { class: 'chip waiting' }, L('优先', 'Priority')) : null,
        s.contactless ? el('span', { class: 'chip bad' }, L('无接触', 'Contactless')) : null,
        s.pinned ? el('span', { class: 'chip' }, L('手动', 'Moved')) : null,
        moveControl(r, s)))))));
  }

  // moveControl moves one household's stop to another courier of the round.
  function moveControl(route, stop) {
    const others = state.couriers.filter((c) => c.courier_id !== route.courier_id);
    if (!others.length) return null;
    const msg = el('span', { class: 'message', role: 'status' });
    const to = el('select', { 'aria-label': L('改由', 'Move to'), 'data-move-to': stop.household_id },
      others.map((c) => el('option', { value: c.courier_id }, c.name || c.courier_id)));
    return el('details', null, el('summary', null, L('改派此户', 'Move this stop')),
      el('div', { class: 'actions wrap' }, to, el('button', {
        type: 'button', 'data-move': stop.household_id, onclick: async (e) => {
          const body = { household_id: stop.household_id, to_courier_id: to.value };
          const key = `move:${state.round}:${JSON.stringify(body)}`;
          body.request_id = requestId(key);
          e.currentTarget.disabled = true;
          const res = await api('POST', `/api/v1/dispatch/rounds/${encodeURIComponent(state.round)}/move-stop`, body);
          settle(key, res);
          if (!res || !res.ok) { e.target.disabled = false; showError(msg, res); return; }
          loadRoutes();
        },
      }, L('改派', 'Move')), msg));
  }

  // Progress of the selected round, live from tracking's round watch; a one-off read when the
  // stream cannot be had.
  let progressStream = null;
  function watchProgress() {
    if (progressStream) progressStream.close();
    progressStream = null;
    if (!state.round || !window.EventSource) return;
    const es = new EventSource(`/api/v1/rounds/${encodeURIComponent(state.round)}/events`);
    es.addEventListener('progress', (ev) => renderProgress(JSON.parse(ev.data)));
    es.onerror = async () => {
      if (es.readyState !== EventSource.CLOSED) return;
      const res = await api('GET', `/api/v1/dispatch/rounds/${encodeURIComponent(state.round)}/progress`);
      if (res && res.ok) renderProgress(res.data);
      else $('progress').replaceChildren(el('p', { class: 'muted' }, res && res.status === 501 ? L('进度稍后开放', 'Progress is not available yet') : L('暂无进度', 'No progress yet')));
    };
    progressStream = es;
  }

  function renderProgress(p) {
    const row = (name, x) => el('tr', null, el('th', { scope: 'row' }, name), el('td', null, x.parcels), el('td', null, x.out_for_delivery), el('td', null, x.delivered), el('td', null, x.failed));
    const head = el('tr', null, el('th', null, ''), el('th', null, L('件数', 'Parcels')), el('th', null, L('配送中', 'Out')), el('th', null, L('已送达', 'Delivered')), el('th', null, L('未送达', 'Failed')));
    $('progress').replaceChildren(
      el('table', { class: 'grid', 'data-progress': p.round_id }, el('thead', null, head), el('tbody', null,
        row(L('合计', 'Total'), p.total),
        p.buildings.map((b) => row(`${b.building}${L('栋', '')}`, b.progress)))),
      el('table', { class: 'grid' }, el('thead', null, head.cloneNode(true)), el('tbody', null, p.couriers.map((c) => row(c.courier_id, c.progress)))));
  }

  async function loadCouriers() {
    const res = await api('GET', '/api/v1/dispatch/couriers');
    if (!res || !res.ok) return;
    state.couriers = res.data.couriers;
    const options = (empty) => [empty ? el('option', { value: '' }, L('（按楼分配）', '(by building)')) : null,
      state.couriers.map((c) => el('option', { value: c.courier_id }, `${c.name || c.courier_id} · ${c.buildings.join(',') || L('全部', 'all')}`))];
    $('from-courier').replaceChildren(...options(false).flat().filter(Boolean));
    $('to-courier').replaceChildren(...options(true).flat().filter(Boolean));
  }

  async function reassign(e) {
    e.preventDefault();
    const msg = $('reassign-message');
    if (!state.round) { showMessage(msg, 'error', L('请先选择轮次', 'Select a round first')); return; }
    const body = { from_courier_id: $('from-courier').value, to_courier_id: $('to-courier').value, reason: $('reassign-reason').value.trim() };
    const key = `reassign:${state.round}:${JSON.stringify(body)}`;
    body.request_id = requestId(key);
    const res = await api('POST', `/api/v1/dispatch/rounds/${encodeURIComponent(state.round)}/reassign`, body);
    settle(key, res);
    if (!res || !res.ok) { showError(msg, res); return; }
    showMessage(msg, 'ok', L('已改派', 'Reassigned'));
    loadRoutes();
  }

  $('checkin').addEventListener('click', checkIn);
  $('gate-add').addEventListener('submit', addTyped);
  $('plan').addEventListener('click', plan);
  $('reassign-form').addEventListener('submit', reassign);
  await loadRounds();
  loadGate();
  await loadCouriers(); // the route list offers them for moving a stop
  loadRoutes();
  watchProgress();
  setInterval(() => { if (!document.hidden && !document.activeElement.matches('input, select')) { loadGate(); loadRounds(); } }, 15000);
})();
