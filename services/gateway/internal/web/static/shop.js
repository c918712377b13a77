// The catalog and basket, shared by the resident's page and the worker's proxy order: suppliers'
// items with price, reference price, stock and ration, + and − buttons, and placing the order
// with a request id kept until its outcome is known, so a retry never orders twice.
'use strict';

window.Doorstep.shop = (opts) => {
  const { L, $, el, yuan, grams, unitName, quantityText, api, newRequestId, outcomeUnknown, showMessage, showError } = window.Doorstep;
  const WEIGHT_STEP_GRAMS = 500;
  const KINDS = { supermarket: L('超市', 'Supermarket'), pharmacy: L('药房', 'Pharmacy') };
  // The community's donated stock is given by campaigns, never ordered (a worker's catalog has it).
  const orderable = (s) => s.kind !== 'donations';
  const state = {
    suppliers: new Map(), items: new Map(), controls: new Map(), basket: new Map(),
    pending: null, // {key, requestId}
    placing: false,
  };

  const itemQuantityText = (item, q) => quantityText(item.weighed, q, item.unit);
  // The order service's rule: weighed amount = round(price per kg * grams / 1000).
  const lineAmount = (item, q) => (item.weighed ? Math.round((item.current_price_fen * q) / 1000) : item.current_price_fen * q);

  async function load() {
    const res = await api('GET', `/api/v1/catalog${opts.compound ? `?compound=${encodeURIComponent(opts.compound)}` : ''}`);
    if (!res || !res.ok) {
      const msg = el('div', { class: 'message' });
      showError(msg, res);
      $(opts.catalog).replaceChildren(msg, el('button', { type: 'button', onclick: load }, L('重试', 'Retry')));
      return;
    }
    const suppliers = res.data.suppliers.filter(orderable);
    state.suppliers.clear();
    state.items.clear();
    for (const s of suppliers) {
      state.suppliers.set(s.supplier_id, s);
      for (const it of s.items) state.items.set(it.item_id, it);
    }
    for (const id of [...state.basket.keys()]) if (!state.items.has(id)) state.basket.delete(id);
    render(suppliers);
    renderBasket();
  }

  function render(suppliers) {
    state.controls.clear();
    if (!suppliers.length) {
      $(opts.catalog).replaceChildren(el('p', { class: 'muted' }, L('暂无商家', 'No suppliers yet')));
      return;
    }
    $(opts.catalog).replaceChildren(...suppliers.map((s) => el('div', { class: 'supplier' },
      el('h3', null, s.name, ' ', el('span', { class: 'en' }, KINDS[s.kind] || s.kind)),
      s.accepting_orders === false ? el('p', { class: 'reason' }, L('暂停接单', 'Not taking orders')) : null,
      s.items.length ? s.items.map(renderItem) : el('p', { class: 'muted' }, L('暂无商品', 'No items')))));
    updateControls();
  }

  function renderItem(item) {
    const per = item.weighed ? '/kg' : `/${unitName(item.unit)}`;
    const output = el('output', { 'aria-live': 'polite', 'data-qty': item.item_id });
    const minus = el('button', { type: 'button', 'aria-label': `${L('减少', 'Less')} ${item.name}`, 'data-remove': item.item_id, onclick: () => step(item, -1) }, '−');
    const plus = el('button', { type: 'button', 'aria-label': `${L('增加', 'More')} ${item.name}`, 'data-add': item.item_id, onclick: () => step(item, +1) }, '+');
    state.controls.set(item.item_id, { output, minus, plus });
    return el('div', { class: 'item' },
      el('div', null, el('div', { class: 'name' }, item.name), el('span', { class: 'price' }, yuan(item.current_price_fen), per)),
      el('div', { class: 'qty' }, minus, output, plus),
      el('div', { class: 'meta' },
        el('span', null, L('参考价', 'Ref.'), ' ', yuan(item.reference_price_fen), per),
        el('span', null, item.stock > 0 ? `${L('库存', 'Stock')} ${itemQuantityText(item, item.stock)}` : L('缺货', 'Out of stock')),
        item.ration_per_day > 0 ? el('span', { class: 'ration' }, `${L('限购', 'Limit')} ${itemQuantityText(item, item.ration_per_day)}/${L('天', 'day')}`) : null,
        item.weighed ? el('span', null, L('称重，按克下单', 'Weighed, ordered in grams')) : null),
      item.bundle ? el('div', { class: 'bundle' }, L('套餐', 'Bundle'), ': ', item.bundle_contents) : null);
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
      c.output.textContent = item.weighed ? grams(q) : String(q);
      c.minus.disabled = q === 0;
      c.plus.disabled = q + (item.weighed ? WEIGHT_STEP_GRAMS : 1) > maxQuantity(item);
    }
  }

  const lines = () => [...state.basket].map(([item_id, quantity]) => ({ item_id, quantity }));

  function renderBasket() {
    let total = 0;
    const rows = lines().map(({ item_id, quantity }) => {
      const item = state.items.get(item_id);
      const amount = lineAmount(item, quantity);
      total += amount;
      return el('div', { class: 'basket-line' }, el('span', null, item.name, ' × ', itemQuantityText(item, quantity)), el('span', null, yuan(amount)));
    });
    $(opts.basket).replaceChildren(...(rows.length ? rows : [el('p', { class: 'muted' }, L('购物篮是空的', 'Your basket is empty'))]));
    $(opts.total).textContent = yuan(total);
    $(opts.button).disabled = state.placing || rows.length === 0 || (opts.household && !opts.household());
  }

  async function place() {
    const ls = lines();
    if (!ls.length || state.placing) return;
    const body = { lines: ls };
    if (opts.household) body.household_id = opts.household();
    if (opts.channel) body.channel = opts.channel();
    const key = JSON.stringify(body);
    if (!state.pending || state.pending.key !== key) state.pending = { key, requestId: newRequestId() };
    body.request_id = state.pending.requestId;
    const msg = $(opts.message);
    state.placing = true;
    renderBasket();
    showMessage(msg, '', L('正在下单…', 'Placing order…'));
    const res = await api('POST', '/api/v1/orders', body);
    state.placing = false;
    if (res && res.ok) {
      state.pending = null;
      state.basket.clear();
      showMessage(msg, 'ok', `${L('下单成功', 'Order placed')}: ${res.data.parcels.length} ${L('个包裹', 'parcel(s)')}, ${yuan(res.data.total_fen)}`);
      updateControls();
      load(); // stock changed
      if (opts.onPlaced) opts.onPlaced(res.data);
    } else {
      if (!outcomeUnknown(res)) state.pending = null;
      // lines[2].quantity -> the item's name, so the person knows which line is meant.
      const [text, fields] = window.Doorstep.errorText(res);
      showMessage(msg, 'error', text, fields.map((f) => f.replace(/^lines\[(\d+)\]/, (m, i) => (ls[+i] ? state.items.get(ls[+i].item_id).name : m))));
    }
    renderBasket();
  }

  $(opts.button).addEventListener('click', place);
  renderBasket();
  load();
  return { load, renderBasket, supplierName: (id) => (state.suppliers.get(id) || {}).name || id };
};
