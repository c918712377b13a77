// The resident's page: notices, the catalog and basket, and the household's orders, whose
// parcels change state live (Server-Sent Events from the gateway) without a reload.
'use strict';

(async () => {
  const { L, $, el, yuan, quantityText, when, api, newRequestId, outcomeUnknown, showMessage, showError, chip, session, topBar } = window.Doorstep;
  const me = await session('RESIDENT');
  if (!me) return;
  topBar(me, `${L('户号', 'Household')} ${me.household_id}`);

  const FINAL = new Set(['DELIVERED', 'CLOSED']);
  const POLL_MS = 5000;
  const MAX_STREAMS = 3;
  const ROLES = {
    RESIDENT: L('居民', 'Resident'), WORKER: L('社工', 'Worker'), SUPPLIER: L('商家', 'Supplier'),
    DISPATCHER: L('调度', 'Dispatcher'), COURIER: L('配送员', 'Courier'), SYSTEM: L('系统', 'System'),
  };
  const state = {
    orders: [],
    streams: new Map(), // order id -> EventSource
    timelines: new Map(), // order id -> entries
    latest: new Map(), // parcel id -> the newest timeline entry that set its state
    retries: new Map(), // order id -> refused stream openings in a row
    open: new Set(), // order ids with the timeline shown
    pendingCancels: new Map(),
    polling: false, // a stream could not be opened: fall back to refreshing
    rendered: '',
  };

  const shop = window.Doorstep.shop({
    catalog: 'catalog', basket: 'basket', total: 'basket-total', button: 'place-order', message: 'order-message',
    onPlaced: () => refresh(),
  });

  // The notices in force for the household's building. A failed refresh keeps what is shown;
  // only a page that has none yet says why.
  let noticesShown = null;
  async function notices() {
    const res = await api('GET', '/api/v1/notices');
    if (!res || !res.ok) {
      if (noticesShown === null && res && res.status !== 401) {
        const msg = el('div', { class: 'message' });
        showError(msg, res);
        $('notices').replaceChildren(msg);
      }
      return;
    }
    const list = res.data.notices;
    const snapshot = JSON.stringify(list);
    if (snapshot === noticesShown) return;
    noticesShown = snapshot;
    $('notices').replaceChildren(list.length
      ? el('ul', { class: 'notices' }, list.map((n) => el('li', { class: 'notice', 'data-notice-id': n.notice_id },
        el('div', { class: 'order-head' }, el('strong', null, n.title),
          el('time', { class: 'muted', datetime: n.posted_at }, when(n.posted_at))),
        el('p', { class: 'notice-text' }, n.text))))
      : el('p', { class: 'muted' }, L('暂无通知', 'No notices')));
  }

  async function refresh() {
    const res = await api('GET', '/api/v1/orders?page_size=20');
    if (!res || !res.ok) {
      if (res && res.status !== 401) {
        const msg = el('div', { class: 'message' });
        showError(msg, res);
        $('orders').replaceChildren(msg);
        state.rendered = '';
      }
      return;
    }
    state.orders = res.data.orders;
    for (const o of state.orders) if (merge(o)) setTimeout(() => refreshOrder(o.order_id), 1000);
    watch();
    render();
  }

  // The event stream (tracking) and the order (the order service) learn of a change each in
  // their own time. A fetched order older than the last event about a parcel keeps the event's
  // state, and is fetched again shortly, until the order service has caught up.
  // Times compared as instants: RFC 3339 strings with different fractions do not sort as text.
  const ms = (iso) => new Date(iso).getTime();

  function merge(o) {
    let behind = false;
    for (const p of o.parcels) {
      const e = state.latest.get(p.parcel_id);
      if (e && (!p.updated_at || ms(p.updated_at) < ms(e.occurred_at)) && p.state !== e.state) {
        p.state = e.state;
        behind = true;
      }
    }
    return behind;
  }

  async function refreshOrder(id, attempt = 0) {
    const res = await api('GET', `/api/v1/orders/${encodeURIComponent(id)}`);
    if (!res || !res.ok) return;
    const behind = merge(res.data);
    const i = state.orders.findIndex((o) => o.order_id === id);
    if (i >= 0) state.orders[i] = res.data;
    watch();
    render();
    if (behind && attempt < 10) setTimeout(() => refreshOrder(id, attempt + 1), 1000);
  }

  // watch keeps one event stream open per unfinished order. The gateway relays tracking's watch:
  // everything so far, then each change; entries already seen are recognised by their id.
  function watch() {
    for (const o of state.orders) {
      const live = state.streams.get(o.order_id);
      if (FINAL.has(o.status)) {
        if (live) live.close();
        state.streams.delete(o.order_id);
      }
    }
    for (const o of state.orders) {
      if (FINAL.has(o.status) || state.streams.has(o.order_id)) continue;
      // A browser opens about six connections to one site; a few streams leave room for the
      // rest of the page. Older unfinished orders are refreshed instead.
      if (!window.EventSource || state.streams.size >= MAX_STREAMS) {
        startPolling();
        continue;
      }
      const es = new EventSource(`/api/v1/orders/${encodeURIComponent(o.order_id)}/events`);
      let timer = null;
      es.addEventListener('entry', (ev) => {
        const e = JSON.parse(ev.data);
        const entries = state.timelines.get(o.order_id) || [];
        if (!entries.some((x) => x.event_id === e.event_id)) entries.push(e);
        state.timelines.set(o.order_id, entries);
        if (e.parcel_id && e.state) {
          const known = state.latest.get(e.parcel_id);
          if (!known || ms(known.occurred_at) <= ms(e.occurred_at)) state.latest.set(e.parcel_id, e);
        }
        const order = state.orders.find((x) => x.order_id === o.order_id);
        if (order) merge(order);
        render();
        // The order's status and totals are derived by the order service: fetch them once the
        // burst of events settles.
        clearTimeout(timer);
        timer = setTimeout(() => refreshOrder(o.order_id), 400);
      });
      es.onerror = () => {
        // A dropped connection reconnects by itself; a refused one is closed. It is tried again
        // a few times (a service restarting), then the page falls back to refreshing.
        if (es.readyState !== EventSource.CLOSED) return;
        state.streams.delete(o.order_id);
        const tries = (state.retries.get(o.order_id) || 0) + 1;
        state.retries.set(o.order_id, tries);
        if (tries > 3) {
          startPolling();
          return;
        }
        state.streams.set(o.order_id, { close() {} }); // holds the place while waiting
        setTimeout(() => { state.streams.delete(o.order_id); watch(); }, 1000 * 2 ** tries);
      };
      es.addEventListener('open', () => state.retries.delete(o.order_id));
      state.streams.set(o.order_id, es);
    }
    $('live-hint').textContent = state.polling ? L('每 5 秒自动刷新', 'Refreshes every 5 s') : L('状态实时更新', 'Live updates');
  }

  function startPolling() {
    if (state.polling) return;
    state.polling = true;
    setInterval(() => { if (!document.hidden) refresh(); }, POLL_MS);
  }

  function render() {
    const snapshot = JSON.stringify([state.orders, [...state.open], [...state.timelines]]);
    if (snapshot === state.rendered) return; // unchanged: keep the DOM (and any pressed button)
    state.rendered = snapshot;
    $('orders').replaceChildren(...(state.orders.length
      ? state.orders.map(renderOrder)
      : [el('p', { class: 'muted' }, L('还没有订单', 'No orders yet'))]));
  }

  const STATUSES = {
    PLACED: ['等待商家确认', 'Awaiting supplier', 'waiting'], IN_PROGRESS: ['进行中', 'In progress', 'moving'],
    DELIVERED: ['已送达', 'Delivered', 'good'], CLOSED: ['已结束', 'Closed', 'bad'],
  };

  function renderOrder(o) {
    const open = state.open.has(o.order_id);
    const [zh, en, tone] = STATUSES[o.status] || [o.status, o.status, ''];
    const msg = el('div', { class: 'message', role: 'status' });
    return el('div', { class: 'order', 'data-order-id': o.order_id, 'data-status': o.status, 'data-placed-by': (o.placed_by || {}).role || '', 'data-channel': o.channel || '' },
      el('div', { class: 'order-head' },
        el('span', null, L('订单', 'Order'), ' ', el('span', { class: 'order-id', title: o.order_id }, '…' + o.order_id.slice(-6))),
        el('span', { class: `chip ${tone}` }, L(zh, en))),
      el('div', { class: 'muted' }, when(o.placed_at), ' · ', yuan(o.total_fen),
        o.channel === 'CAMPAIGN' ? ` · ${L('社区免费发放', 'free from the community')}`
          : o.channel === 'PHONE' ? ` · ${L('电话订购，社工代下单', 'ordered by phone, placed by a worker')}`
            : o.placed_by && o.placed_by.role === 'WORKER' ? ` · ${L('社工代下单', 'placed by a worker')}` : ''),
      o.parcels.map((p) => renderParcel(p, o)),
      el('div', { class: 'actions' },
        el('button', { type: 'button', class: 'link', 'aria-expanded': String(open), onclick: () => toggle(o.order_id) },
          open ? L('收起动态', 'Hide timeline') : L('查看动态', 'Timeline')),
        // Unconfirmed parcels can be cancelled, and so can parcels that could not be delivered
        // (they would otherwise go out again in the next round), but not a free pack.
        o.parcels.some((p) => p.state === 'PLACED' || (p.state === 'FAILED' && o.channel !== 'CAMPAIGN'))
          ? el('button', { type: 'button', class: 'danger', onclick: (e) => cancel(o, e.currentTarget, msg) }, L('取消订单', 'Cancel'))
          : null),
      msg,
      open ? renderTimeline(o.order_id) : null);
  }

  function renderParcel(p, o) {
    // A free pack's supplier (the donated stock) is not in a resident's catalog.
    const from = o.channel === 'CAMPAIGN' && shop.supplierName(p.supplier_id) === p.supplier_id
      ? L('社区发放', 'Community') : shop.supplierName(p.supplier_id);
    const lines = p.lines.map((l) => {
      const q = l.confirmed_quantity || l.quantity;
      return `${l.name} ${quantityText(l.weighed, q, l.unit)}`;
    }).join(L('、', ', '));
    return el('div', { class: 'parcel', 'data-parcel-id': p.parcel_id, 'data-state': p.state },
      el('div', null, from, ' ', chip(p.state), ' ', yuan(p.total_fen)),
      el('div', { class: 'lines' }, lines),
      p.contactless ? el('div', { class: 'muted' }, L('无接触配送：放门口、敲门、后退', 'Contactless: left at the door')) : null,
      p.reason ? el('div', { class: 'reason' }, L('原因', 'Reason'), ': ', p.reason) : null);
  }

  function renderTimeline(orderId) {
    const entries = [...(state.timelines.get(orderId) || [])].sort((a, b) => (a.occurred_at < b.occurred_at ? -1 : 1));
    if (!entries.length) return el('p', { class: 'muted' }, L('动态即将出现', 'The timeline appears in a moment'));
    return el('ol', { class: 'timeline' }, entries.map((e) => {
      const st = window.Doorstep.STATES[e.state];
      const label = e.kind === 'order.placed' ? L('下单', 'Order placed') : st ? L(st[0], st[1]) : e.kind;
      return el('li', null, el('time', { datetime: e.occurred_at }, when(e.occurred_at)), label,
        e.detail ? ` — ${e.detail}` : null,
        e.actor && e.actor.role ? el('div', { class: 'muted' }, ROLES[e.actor.role] || e.actor.role, ' ', e.actor.id) : null);
    }));
  }

  async function toggle(orderId) {
    if (state.open.has(orderId)) {
      state.open.delete(orderId);
    } else {
      state.open.add(orderId);
      if (!state.streams.has(orderId)) {
        // A finished order has no open stream: read its timeline once.
        const res = await api('GET', `/api/v1/orders/${encodeURIComponent(orderId)}/timeline`);
        if (res && res.ok) state.timelines.set(orderId, res.data.entries);
      }
    }
    render();
  }

  async function cancel(o, button, msg) {
    if (!window.confirm(L('确定取消这个订单？未确认的包裹和投递失败的包裹会被取消；已确认、正在配送的包裹无法取消。',
      'Cancel this order? Unconfirmed parcels and parcels that could not be delivered are cancelled; parcels confirmed and on their way cannot be.'))) return;
    let requestId = state.pendingCancels.get(o.order_id);
    if (!requestId) {
      requestId = newRequestId();
      state.pendingCancels.set(o.order_id, requestId);
    }
    button.disabled = true;
    const res = await api('POST', `/api/v1/orders/${encodeURIComponent(o.order_id)}/cancel`, { request_id: requestId, reason: L('居民取消', 'cancelled by the resident') });
    if (res && res.ok) {
      state.pendingCancels.delete(o.order_id);
      refresh();
      shop.load(); // an unconfirmed parcel's stock is back
      return;
    }
    if (!outcomeUnknown(res)) state.pendingCancels.delete(o.order_id);
    button.disabled = false;
    showError(msg, res);
  }

  notices();
  refresh();
  // Orders placed elsewhere (a worker's proxy order, a campaign's free pack) and new notices show
  // up within a minute, and at once when the page comes back into view.
  setInterval(() => {
    if (document.hidden) return;
    notices();
    if (!state.polling) refresh();
  }, 60000);
  document.addEventListener('visibilitychange', () => { if (!document.hidden) notices(); });
  showMessage($('order-message'), '', '');
})();
