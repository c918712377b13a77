// The courier's page: the route stop by stop in walking order, with big buttons for a gloved
// thumb: picked up at the gate, delivered (handed over or left at the door), failed with a
// reason, and several stops at once for a floor without signal. The courier is the one the
// account is bound to.
'use strict';

(async () => {
  const { L, $, el, api, newRequestId, outcomeUnknown, showMessage, showError, chip, session, topBar } = window.Doorstep;
  const me = await session('COURIER');
  if (!me) return;
  topBar(me, `${L('配送员', 'Courier')} ${me.name || me.courier_id}`);

  const REASONS = [['NOT_HOME', '家中无人', 'Not home'], ['REFUSED', '拒收', 'Refused'], ['WRONG_ADDRESS', '地址有误', 'Wrong address'], ['OTHER', '其他', 'Other']];
  const state = { route: null, selected: new Set(), pending: new Map() };
  function requestId(key) {
    if (!state.pending.has(key)) state.pending.set(key, newRequestId());
    return state.pending.get(key);
  }
  const settle = (key, res) => { if (!outcomeUnknown(res)) state.pending.delete(key); };

  async function load() {
    const res = await api('GET', '/api/v1/courier/route');
    if (!res || !res.ok) {
      state.route = null;
      $('pickup').hidden = true;
      $('stops').replaceChildren();
      if (res && res.status === 404) $('route-info').textContent = L('还没有分配给你的路线', 'No route assigned to you yet');
      else showError($('route-message'), res);
      return;
    }
    state.route = res.data;
    render();
  }

  function render() {
    const r = state.route;
    const parcels = r.stops.flatMap((s) => s.parcels);
    const left = parcels.filter((p) => p.status === 'PENDING' || p.status === 'OUT_FOR_DELIVERY').length;
    $('route-info').textContent = `${L('轮次', 'Round')} ${r.round_id} · ${r.stops.length} ${L('户', 'stops')} · ${L('待送', 'to deliver')} ${left} · v${r.version}`;
    $('pickup').hidden = !parcels.some((p) => p.status === 'PENDING');
    $('stops').replaceChildren(...r.stops.map(renderStop));
    renderMulti();
  }

  function renderStop(s) {
    const a = s.address;
    const msg = el('div', { class: 'message', role: 'status' });
    const open = s.parcels.filter((p) => p.status === 'OUT_FOR_DELIVERY');
    const reason = el('select', { 'aria-label': L('未送达原因', 'Why not delivered'), 'data-reason-for': s.household_id },
      REASONS.map(([v, zh, en]) => el('option', { value: v }, L(zh, en))));
    const note = el('input', { type: 'text', placeholder: L('说明（选“其他”时必填）', 'Note (required for Other)'), 'data-note-for': s.household_id });
    return el('section', { class: 'card stop', 'data-stop': s.household_id },
      el('div', { class: 'order-head' },
        el('h3', null, `${s.sequence}. ${a.building}${L('栋', '-')}${a.unit}${L('单元', '-')} ${a.floor}${L('楼', 'F')} ${a.room}`),
        el('span', { class: 'muted' }, `${L('第', 'Trip ')}${s.trip}${L('趟', '')}`)),
      el('div', { class: 'chips' },
        s.priority ? el('span', { class: 'chip waiting' }, L('优先：老人/病人', 'Priority household')) : null,
        s.contactless ? el('span', { class: 'chip bad' }, L('无接触：放门口，敲门后退', 'Contactless: leave at door, knock, step back')) : null),
      s.parcels.map((p) => el('div', { class: 'parcel', 'data-parcel-id': p.parcel_id, 'data-state': p.status }, '…' + p.parcel_id.slice(-6), ' ', chip(p.status))),
      open.length ? [
        el('label', { class: 'check big' }, el('input', {
          type: 'checkbox', checked: state.selected.has(s.household_id), 'data-select': s.household_id,
          onchange: (e) => { if (e.target.checked) state.selected.add(s.household_id); else state.selected.delete(s.household_id); renderMulti(); },
        }), ' ', L('多户一起标记', 'Select for several at once')),
        el('div', { class: 'actions big' },
          s.contactless ? null : el('button', { type: 'button', class: 'primary big', 'data-delivered': s.household_id, onclick: () => deliver(s, 'HANDED_OVER', msg) }, L('已送达（当面）', 'Delivered (handed over)')),
          el('button', { type: 'button', class: 'primary big', 'data-left': s.household_id, onclick: () => deliver(s, 'LEFT_AT_DOOR', msg) }, L('已放门口', 'Left at the door'))),
        el('div', { class: 'actions big wrap' }, reason, note,
          el('button', { type: 'button', class: 'danger big', 'data-failed': s.household_id, onclick: () => fail(s, reason.value, note.value, msg) }, L('未送达', 'Not delivered'))),
      ] : null,
      msg);
  }

  // complete records outcomes for parcels through CompleteStops: one call for one stop or many,
  // each parcel recorded (or refused) on its own.
  async function complete(outcomes, msg) {
    const key = `complete:${JSON.stringify(outcomes)}`;
    const res = await api('POST', '/api/v1/courier/complete', { request_id: requestId(key), outcomes });
    settle(key, res);
    if (!res || !res.ok) { showError(msg, res); return false; }
    const refused = res.data.results.filter((r) => !r.recorded);
    if (refused.length) showMessage(msg, 'error', L('部分未记录', 'Some were not recorded'), refused.map((r) => `…${r.parcel_id.slice(-6)}: ${r.error}`));
    return true;
  }

  async function deliver(s, method, msg) {
    const outcomes = s.parcels.filter((p) => p.status === 'OUT_FOR_DELIVERY').map((p) => ({ parcel_id: p.parcel_id, outcome: 'DELIVERED', method }));
    if (await complete(outcomes, msg)) { state.selected.delete(s.household_id); load(); }
  }

  async function fail(s, reason, note, msg) {
    if (reason === 'OTHER' && !note.trim()) { showMessage(msg, 'error', L('请填写说明', 'Add a note')); return; }
    const outcomes = s.parcels.filter((p) => p.status === 'OUT_FOR_DELIVERY').map((p) => ({ parcel_id: p.parcel_id, outcome: 'FAILED', reason, note }));
    if (await complete(outcomes, msg)) { state.selected.delete(s.household_id); load(); }
  }

  function renderMulti() {
    const n = state.selected.size;
    $('multi').hidden = n < 1;
    $('multi-count').textContent = `${L('已选', 'Selected')} ${n} ${L('户', 'stops')}`;
  }

  $('multi-delivered').addEventListener('click', async () => {
    const stops = state.route.stops.filter((s) => state.selected.has(s.household_id));
    const outcomes = stops.flatMap((s) => s.parcels.filter((p) => p.status === 'OUT_FOR_DELIVERY')
      .map((p) => ({ parcel_id: p.parcel_id, outcome: 'DELIVERED', method: s.contactless ? 'LEFT_AT_DOOR' : 'HANDED_OVER' })));
    if (await complete(outcomes, $('route-message'))) { state.selected.clear(); load(); }
  });

  $('pickup').addEventListener('click', async () => {
    const key = `pickup:${state.route.route_id}:${state.route.version}`;
    $('pickup').disabled = true;
    const res = await api('POST', '/api/v1/courier/pickup', { request_id: requestId(key), route_id: state.route.route_id });
    settle(key, res);
    $('pickup').disabled = false;
    if (!res || !res.ok) { showError($('route-message'), res); return; }
    showMessage($('route-message'), 'ok', L('已取货，出发吧', 'Picked up — off you go'));
    state.route = res.data;
    render();
  });

  // A re-plan or a dispatcher's move changes the route: the courier service streams each new
  // version. Without the stream (no route yet, a service restarting) the page looks every 15 s.
  let stream = null;
  function live() {
    if (!window.EventSource || stream) return;
    const es = new EventSource('/api/v1/courier/route/events');
    es.addEventListener('route', (ev) => {
      const r = JSON.parse(ev.data);
      if (!state.route || r.version >= state.route.version) {
        state.route = r;
        render();
      }
    });
    es.onerror = () => { if (es.readyState === EventSource.CLOSED) stream = null; };
    stream = es;
  }

  await load();
  live();
  setInterval(() => {
    if (document.hidden || document.activeElement.matches('input, select')) return;
    if (!stream) { load().then(live); }
  }, 15000);
})();
