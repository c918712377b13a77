// The resident page: pick a household, browse the catalog, fill a basket, place an order and
// follow it. Plain JavaScript, no build step, no third-party code; it talks only to /api/v1/.
'use strict';

(() => {
  const DEFAULT_HOUSEHOLD = 'haixin-1-1-101';
  const WEIGHT_STEP_GRAMS = 500;
  const REFRESH_MS = 3000;

  const STATES = {
    PLACED: ['已下单', 'Placed', 'waiting'],
    CONFIRMED: ['商家已确认', 'Confirmed', 'moving'],
    REJECTED: ['商家已拒绝', 'Rejected', 'bad'],
    CANCELLED: ['已取消', 'Cancelled', 'bad'],
    EXPIRED: ['已过期', 'Expired', 'bad'],
    READY: ['已备货', 'Ready', 'moving'],
    AT_GATE: ['已到小区门口', 'At the gate', 'moving'],
    ASSIGNED: ['已分配配送员', 'Assigned', 'moving'],
    OUT_FOR_DELIVERY: ['配送中', 'Out for delivery', 'moving'],
    DELIVERED: ['已送达', 'Delivered', 'good'],
    FAILED: ['未送达', 'Not delivered', 'bad'],
  };
  const STATUSES = {
    PLACED: ['等待商家确认', 'Awaiting supplier', 'waiting'],
    IN_PROGRESS: ['进行中', 'In progress', 'moving'],
    DELIVERED: ['已送达', 'Delivered', 'good'],
    CLOSED: ['已结束', 'Closed', 'bad'],
  };
  const ROLES = {
    RESIDENT: '居民 Resident', WORKER: '社工 Worker', SUPPLIER: '商家 Supplier',
    DISPATCHER: '调度 Dispatcher', COURIER: '配送员 Courier', SYSTEM: '系统 System',
  };
  const SUPPLIER_KINDS = { supermarket: '超市 Supermarket', pharmacy: '药房 Pharmacy' };

  const state = {
    household: localStorage.getItem('doorstep.household') || DEFAULT_HOUSEHOLD,
    suppliers: new Map(), // supplier_id -> supplier
    items: new Map(), // item_id -> item
    controls: new Map(), // item_id -> {output, minus, plus}
    basket: new Map(), // item_id -> quantity (units, or grams when weighed)
    // A placed order keeps its request id until the outcome is known, so a retry after a
    // timeout or a dropped connection cannot order the same basket twice.
    pendingOrder: null, // {key, requestId}
    pendingCancels: new Map(), // order_id -> request id
    openTimelines: new Set(),
    timelines: new Map(), // order_id -> timeline | {error}
    orders: [],
    rendered: '',
    placing: false,
    refreshing: false,
  };

  const $ = (id) => document.getElementById(id);

  // el builds DOM from text only (never innerHTML), so catalog names cannot inject markup.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') node.className = v;
      else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else if (v !== false && v != null) node.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children.flat()) {
      if (c == null || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }
  const en = (text) => el('span', { class: 'en' }, text);

  // Money is integer fen all the way; only the display divides.
  function yuan(fen) {
    const sign = fen < 0 ? '-' : '';
    const abs = Math.abs(fen);
    return `${sign}¥${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, '0')}`;
  }
  function grams(g) {
    return g >= 1000 ? `${g / 1000} kg` : `${g} g`;
  }
  function quantityText(item, q) {
    return item.weighed ? grams(q) : `${q} ${item.unit}`;
  }
  // The order service's rule: weighed amount = round(price per kg * grams / 1000).
  function lineAmount(item, q) {
    return item.weighed ? Math.round((item.current_price_fen * q) / 1000) : item.current_price_fen * q;
  }
  const timeFormat = new Intl.DateTimeFormat('zh-CN', {
    timeZone: 'Asia/Shanghai', month: '2-digit', day: '2-digit',
    hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false,
  });
  const when = (iso) => (iso ? timeFormat.format(new Date(iso)) : '');

  function newRequestId() {
    if (crypto.randomUUID) return crypto.randomUUID();
    // randomUUID exists only in secure contexts (https, localhost); a phone on the compound's
    // Wi-Fi may open the page over plain http, so build a version 4 UUID by hand there.
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  // api never throws for HTTP errors; a network failure throws, and callers keep their request
  // id for the retry.
  async function api(method, path, body) {
    const opts = { method, headers: { Accept: 'application/json' } };
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    const res = await fetch(path, opts);
    let data = null;
    try {
      data = await res.json();
    } catch (_) {
      data = null;
    }
    return { ok: res.ok, status: res.status, data };
  }

  // An outcome is unknown after a network error, 5xx or timeout: the request may have been
  // applied. Only then is the request id kept for the retry.
  const outcomeUnknown = (res) => !res || res.status >= 500;

  function errorMessage(res, names) {
    if (!res) return ['网络错误，请重试', 'Network error, please try again'];
    const err = (res.data && res.data.error) || {};
    const byStatus = {
      400: ['请检查输入', 'Please check your input'],
      404: ['未找到', 'Not found'],
      409: ['无法完成', 'Could not be done'],
      413: ['请求过大', 'Request too large'],
      503: ['服务暂不可用，请稍后重试', 'Service unavailable, please retry'],
      504: ['服务超时，请重试', 'Timed out, please retry'],
    };
    const [zh, enText] = byStatus[res.status] || ['出错了', 'Something went wrong'];
    const fields = Object.entries(err.fields || {}).map(([f, why]) => {
      // lines[2].quantity -> the item's name, so a resident knows which line is meant.
      const m = /^lines\[(\d+)\]\.?(.*)$/.exec(f);
      const label = m && names[+m[1]] ? `${names[+m[1]]}${m[2] ? ' ' + m[2] : ''}` : f;
      return `${label}: ${why}`;
    });
    return [zh, enText, err.message, fields];
  }

  function showMessage(target, kind, parts) {
    const [zh, enText, detail, fields] = parts;
    target.className = `message ${kind}`;
    const hasFields = Boolean(fields && fields.length);
    const nodes = [el('div', null, zh, ' ', en(enText))];
    if (detail && !hasFields) nodes.push(el('div', null, detail));
    if (hasFields) nodes.push(el('ul', null, fields.map((f) => el('li', null, f))));
    target.replaceChildren(...nodes);
  }

  // ---- household ----

  function compoundOf(household) {
    return household.split('-')[0] || 'haixin';
  }

  function setHousehold(id) {
    const changedCompound = compoundOf(id) !== compoundOf(state.household);
    state.household = id;
    localStorage.setItem('doorstep.household', id);
    state.pendingOrder = null;
    state.openTimelines.clear();
    state.timelines.clear();
    state.orders = [];
    state.rendered = '';
    $('orders').replaceChildren();
    if (changedCompound) {
      state.basket.clear();
      loadCatalog();
    }
    renderBasket();
    refreshOrders();
  }

  // ---- catalog ----

  async function loadCatalog() {
    const target = $('catalog');
    let res;
    try {
      res = await api('GET', `/api/v1/catalog?compound=${encodeURIComponent(compoundOf(state.household))}`);
    } catch (_) {
      res = null;
    }
    if (!res || !res.ok) {
      const msg = el('div', { class: 'message' });
      showMessage(msg, 'error', errorMessage(res, []));
      target.replaceChildren(msg, el('button', { type: 'button', onclick: loadCatalog }, '重试 ', en('Retry')));
      return;
    }
    state.suppliers.clear();
    state.items.clear();
    for (const s of res.data.suppliers) {
      state.suppliers.set(s.supplier_id, s);
      for (const it of s.items) state.items.set(it.item_id, it);
    }
    for (const id of [...state.basket.keys()]) if (!state.items.has(id)) state.basket.delete(id);
    renderCatalog(res.data.suppliers);
    renderBasket();
  }

  function renderCatalog(suppliers) {
    state.controls.clear();
    if (!suppliers.length) {
      $('catalog').replaceChildren(el('p', { class: 'muted' }, '暂无商家 ', en('No suppliers yet')));
      return;
    }
    $('catalog').replaceChildren(...suppliers.map((s) => el('div', { class: 'supplier' },
      el('h3', null, s.name, ' ', en(SUPPLIER_KINDS[s.kind] || s.kind)),
      s.items.length ? s.items.map(renderItem) : el('p', { class: 'muted' }, '暂无商品 ', en('No items')),
    )));
    updateControls();
  }

  function renderItem(item) {
    const per = item.weighed ? '/kg' : `/${item.unit}`;
    const output = el('output', { 'aria-live': 'polite' });
    const minus = el('button', { type: 'button', 'aria-label': `减少 less ${item.name}`, onclick: () => step(item, -1) }, '−');
    const plus = el('button', { type: 'button', 'aria-label': `增加 more ${item.name}`, onclick: () => step(item, +1) }, '+');
    state.controls.set(item.item_id, { output, minus, plus });
    return el('div', { class: 'item' },
      el('div', null,
        el('div', { class: 'name' }, item.name),
        el('span', { class: 'price' }, yuan(item.current_price_fen), per)),
      el('div', { class: 'qty' }, minus, output, plus),
      el('div', { class: 'meta' },
        el('span', null, '参考价 ', en('Ref.'), ' ', yuan(item.reference_price_fen), per),
        el('span', null, item.stock > 0
          ? ['库存 ', en('Stock'), ' ', quantityText(item, item.stock)]
          : ['缺货 ', en('Out of stock')]),
        item.ration_per_day > 0
          ? el('span', { class: 'ration' }, '限购 ', en('Limit'), ' ', quantityText(item, item.ration_per_day), '/天 ', en('day'))
          : null,
        item.weighed ? el('span', null, '称重 ', en('Weighed, ordered in grams')) : null),
      item.bundle ? el('div', { class: 'bundle' }, '套餐 ', en('Bundle'), ': ', item.bundle_contents) : null,
    );
  }

  function maxQuantity(item) {
    let max = item.stock;
    if (item.ration_per_day > 0) max = Math.min(max, item.ration_per_day);
    return Math.max(0, max);
  }

  function step(item, dir) {
    const unit = item.weighed ? WEIGHT_STEP_GRAMS : 1;
    const now = state.basket.get(item.item_id) || 0;
    const next = Math.min(Math.max(0, now + dir * unit), maxQuantity(item));
    if (next === 0) state.basket.delete(item.item_id);
    else state.basket.set(item.item_id, next);
    updateControls();
    renderBasket();
  }

  function updateControls() {
    for (const [id, c] of state.controls) {
      const item = state.items.get(id);
      const q = state.basket.get(id) || 0;
      const unit = item.weighed ? WEIGHT_STEP_GRAMS : 1;
      c.output.textContent = item.weighed ? grams(q) : String(q);
      c.minus.disabled = q === 0;
      c.plus.disabled = q + unit > maxQuantity(item);
    }
  }

  // ---- basket ----

  function basketLines() {
    return [...state.basket].map(([item_id, quantity]) => ({ item_id, quantity }));
  }

  function renderBasket() {
    const lines = basketLines();
    let total = 0;
    const rows = lines.map(({ item_id, quantity }) => {
      const item = state.items.get(item_id);
      const amount = lineAmount(item, quantity);
      total += amount;
      return el('div', { class: 'basket-line' },
        el('span', null, item.name, ' × ', quantityText(item, quantity)),
        el('span', null, yuan(amount)));
    });
    $('basket').replaceChildren(...(rows.length ? rows : [el('p', { class: 'muted' }, '购物篮是空的 ', en('Your basket is empty'))]));
    $('basket-total').textContent = yuan(total);
    $('place-order').disabled = state.placing || rows.length === 0;
  }

  async function placeOrder() {
    const lines = basketLines();
    if (!lines.length || state.placing) return;
    const body = { household_id: state.household, lines };
    const key = JSON.stringify(body);
    if (!state.pendingOrder || state.pendingOrder.key !== key) {
      state.pendingOrder = { key, requestId: newRequestId() };
    }
    body.request_id = state.pendingOrder.requestId;
    const names = lines.map((l) => state.items.get(l.item_id).name);
    const msg = $('order-message');
    state.placing = true;
    renderBasket();
    showMessage(msg, '', ['正在下单…', 'Placing order…']);
    let res = null;
    try {
      res = await api('POST', '/api/v1/orders', body);
    } catch (_) {
      res = null;
    } finally {
      state.placing = false;
    }
    if (res && res.ok) {
      state.pendingOrder = null;
      state.basket.clear();
      showMessage(msg, 'ok', ['下单成功', `Order placed: ${res.data.parcels.length} parcel(s), ${yuan(res.data.total_fen)}`]);
      updateControls();
      loadCatalog(); // stock changed
      refreshOrders();
    } else {
      if (!outcomeUnknown(res)) state.pendingOrder = null;
      showMessage(msg, 'error', errorMessage(res, names));
    }
    renderBasket();
  }

  // ---- orders ----

  async function refreshOrders() {
    if (state.refreshing) return;
    state.refreshing = true;
    const household = state.household;
    try {
      const res = await api('GET', `/api/v1/households/${encodeURIComponent(household)}/orders?page_size=20`);
      if (household !== state.household) return;
      if (!res.ok) {
        if (res.status === 404) {
          state.orders = [];
        } else {
          const msg = el('div', { class: 'message' });
          showMessage(msg, 'error', errorMessage(res, []));
          $('orders').replaceChildren(msg);
          state.rendered = '';
          return;
        }
      } else {
        state.orders = res.data.orders;
      }
      await Promise.all([...state.openTimelines].map(loadTimeline));
      renderOrders();
    } catch (_) {
      // The network blinked; the next tick tries again and the last view stays on screen.
    } finally {
      state.refreshing = false;
    }
  }

  async function loadTimeline(orderId) {
    let res;
    try {
      res = await api('GET', `/api/v1/orders/${encodeURIComponent(orderId)}/timeline`);
    } catch (_) {
      return;
    }
    // The tracking service learns of an order a moment after it is placed.
    state.timelines.set(orderId, res.ok ? res.data : { entries: [], pending: res.status === 404, error: res.status !== 404 && res });
  }

  function renderOrders() {
    const snapshot = JSON.stringify([state.orders, [...state.openTimelines], [...state.timelines]]);
    if (snapshot === state.rendered) return; // unchanged: keep the DOM (and any pressed button)
    state.rendered = snapshot;
    if (!state.orders.length) {
      $('orders').replaceChildren(el('p', { class: 'muted' }, '还没有订单 ', en('No orders yet')));
      return;
    }
    $('orders').replaceChildren(...state.orders.map(renderOrder));
  }

  function chip(table, key) {
    const [zh, enText, tone] = table[key] || [key || '—', '', ''];
    return el('span', { class: `chip ${tone}` }, zh, enText ? ' ' : '', enText ? en(enText) : null);
  }

  function renderOrder(o) {
    const open = state.openTimelines.has(o.order_id);
    const cancellable = o.parcels.some((p) => p.state === 'PLACED');
    const msg = el('div', { class: 'message', role: 'status' });
    return el('div', { class: 'order' },
      el('div', { class: 'order-head' },
        el('span', null, '订单 ', en('Order'), ' ', el('span', { class: 'order-id', title: o.order_id }, '…' + o.order_id.slice(-6))),
        chip(STATUSES, o.status)),
      el('div', { class: 'muted' }, when(o.placed_at), ' · ', yuan(o.total_fen)),
      o.parcels.map(renderParcel),
      el('div', { class: 'actions' },
        el('button', { type: 'button', class: 'link', 'aria-expanded': String(open), onclick: () => toggleTimeline(o.order_id) },
          open ? '收起动态 ' : '查看动态 ', en(open ? 'Hide timeline' : 'Timeline')),
        cancellable
          ? el('button', { type: 'button', class: 'danger', onclick: (e) => cancelOrder(o, e.currentTarget, msg) }, '取消订单 ', en('Cancel'))
          : null),
      msg,
      open ? renderTimeline(state.timelines.get(o.order_id)) : null,
    );
  }

  function renderParcel(p) {
    const supplier = state.suppliers.get(p.supplier_id);
    const lines = p.lines.map((l) => {
      const q = l.confirmed_quantity || l.quantity;
      return `${l.name} ${l.weighed ? grams(q) : `${q} ${l.unit}`}`;
    }).join('、');
    return el('div', { class: 'parcel' },
      el('div', null, supplier ? supplier.name : p.supplier_id, ' ', chip(STATES, p.state), ' ', yuan(p.total_fen)),
      el('div', { class: 'lines' }, lines),
      p.reason ? el('div', { class: 'reason' }, '原因 ', en('Reason'), ': ', p.reason) : null);
  }

  function renderTimeline(t) {
    if (!t) return el('p', { class: 'muted' }, '加载中… ', en('Loading…'));
    if (t.pending) return el('p', { class: 'muted' }, '动态即将出现 ', en('The timeline appears in a moment'));
    if (t.error) {
      const msg = el('div', { class: 'message' });
      showMessage(msg, 'error', errorMessage(t.error, []));
      return msg;
    }
    return el('ol', { class: 'timeline' }, t.entries.map((e) => {
      const [kind, name] = e.kind.split('.');
      const label = kind === 'order' && name === 'placed'
        ? ['下单', 'Order placed']
        : STATES[e.state] || [e.kind, ''];
      const supplier = e.parcel_id && findSupplierOfParcel(e.parcel_id);
      return el('li', null,
        el('time', { datetime: e.occurred_at }, when(e.occurred_at)),
        label[0], ' ', en(label[1]),
        supplier ? ` · ${supplier}` : null,
        e.detail ? ` — ${e.detail}` : null,
        e.actor && e.actor.role ? el('div', { class: 'muted' }, ROLES[e.actor.role] || e.actor.role, ' ', e.actor.id) : null);
    }));
  }

  function findSupplierOfParcel(parcelId) {
    for (const o of state.orders) {
      for (const p of o.parcels) {
        if (p.parcel_id === parcelId) {
          const s = state.suppliers.get(p.supplier_id);
          return s ? s.name : p.supplier_id;
        }
      }
    }
    return '';
  }

  function toggleTimeline(orderId) {
    if (state.openTimelines.has(orderId)) {
      state.openTimelines.delete(orderId);
      renderOrders();
      return;
    }
    state.openTimelines.add(orderId);
    renderOrders();
    loadTimeline(orderId).then(renderOrders);
  }

  async function cancelOrder(o, button, msg) {
    if (!window.confirm('确定取消这个订单？已确认的包裹无法取消。\nCancel this order? Parcels already confirmed cannot be cancelled.')) return;
    let requestId = state.pendingCancels.get(o.order_id);
    if (!requestId) {
      requestId = newRequestId();
      state.pendingCancels.set(o.order_id, requestId);
    }
    button.disabled = true;
    let res = null;
    try {
      res = await api('POST', `/api/v1/orders/${encodeURIComponent(o.order_id)}/cancel`,
        { request_id: requestId, reason: '居民取消 cancelled by resident' });
    } catch (_) {
      res = null;
    }
    if (res && res.ok) {
      state.pendingCancels.delete(o.order_id);
      state.rendered = '';
      refreshOrders();
      loadCatalog(); // released stock is back
      return;
    }
    if (!outcomeUnknown(res)) state.pendingCancels.delete(o.order_id);
    button.disabled = false;
    showMessage(msg, 'error', errorMessage(res, []));
  }

  // ---- start ----

  function start() {
    const input = $('household');
    input.value = state.household;
    $('household-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const id = input.value.trim();
      if (id) setHousehold(id);
    });
    $('place-order').addEventListener('click', placeOrder);
    renderBasket();
    loadCatalog();
    refreshOrders();
    setInterval(() => {
      if (!document.hidden) refreshOrders();
    }, REFRESH_MS);
  }

  start();
})();
