// The supplier's console: the parcel queue, confirming (with actual weights, or fewer units: a
// partial confirmation) or rejecting each parcel, marking it handed over at the gate, and
// keeping stock and prices up to date. The supplier is the one the account is bound to.
'use strict';

(async () => {
  const { L, $, el, yuan, unitName, quantityText, when, api, newRequestId, outcomeUnknown, showMessage, showError, chip, session, topBar } = window.Doorstep;
  const me = await session('SUPPLIER');
  if (!me) return;
  topBar(me, `${L('商家', 'Supplier')} ${me.supplier_id}`);

  const TABS = [['PLACED', '待确认', 'To confirm'], ['CONFIRMED', '待交付', 'To pack'], ['READY', '已交付', 'At the gate'], ['', '全部', 'All']];
  // pending: action key -> request id; paged: the list shows more than its first page.
  const state = { tab: 'PLACED', pending: new Map(), paged: false };

  // requestId keeps one id per action until its outcome is known, so a retry is not a second action.
  function requestId(key) {
    if (!state.pending.has(key)) state.pending.set(key, newRequestId());
    return state.pending.get(key);
  }
  const settle = (key, res) => { if (!outcomeUnknown(res)) state.pending.delete(key); };

  async function loadQueue() {
    const res = await api('GET', '/api/v1/supplier/queue');
    if (!res || !res.ok) {
      $('queue').replaceChildren(el('p', { class: 'muted' }, res && res.status === 501 ? L('统计稍后开放', 'Counts are not available yet') : L('统计暂不可用', 'Counts unavailable')));
      return;
    }
    $('queue').replaceChildren(el('div', { class: 'chips' }, res.data.states.map((s) => el('span', null, chip(s.state), ' ', s.parcels))));
  }

  function renderTabs() {
    $('tabs').replaceChildren(...TABS.map(([st, zh, en]) => el('button', {
      type: 'button', role: 'tab', 'aria-selected': String(state.tab === st), class: state.tab === st ? 'tab on' : 'tab',
      'data-tab': st || 'ALL', onclick: () => { state.tab = st; renderTabs(); loadParcels(); },
    }, L(zh, en))));
  }

  // loadParcels shows the first page of the tab's parcels (100), or with a token adds the next
  // page below the ones shown. The work to do comes oldest first; "At the gate" and "All", which
  // keep every parcel ever handed over, come newest first (by reservation time): today's are the
  // ones looked for.
  async function loadParcels(pageToken) {
    const query = new URLSearchParams();
    if (state.tab) query.set('state', state.tab);
    if (state.tab === 'READY' || !state.tab) query.set('newest_first', 'true');
    if (pageToken) query.set('page_token', pageToken);
    const qs = query.toString();
    const res = await api('GET', `/api/v1/supplier/parcels${qs ? `?${qs}` : ''}`);
    if (!res || !res.ok) {
      const msg = el('div', { class: 'message' });
      showError(msg, res);
      if (pageToken) $('parcels').append(msg);
      else $('parcels').replaceChildren(msg);
      return;
    }
    const ps = res.data.parcels;
    const shown = ps.map(renderParcel);
    state.paged = Boolean(pageToken);
    if (res.data.next_page_token) {
      const more = el('button', { type: 'button', id: 'more-parcels' }, L('加载更多', 'More'));
      more.addEventListener('click', () => { more.remove(); state.paged = true; loadParcels(res.data.next_page_token); });
      shown.push(more);
    }
    if (pageToken) $('parcels').append(...shown);
    else $('parcels').replaceChildren(...(ps.length ? shown : [el('p', { class: 'muted' }, L('没有包裹', 'No parcels'))]));
  }

  const addressText = (a) => `${a.building}${L('栋', '-')}${a.unit}${L('单元', '-')}${a.room}`;

  function renderParcel(p) {
    const msg = el('div', { class: 'message', role: 'status' });
    const inputs = new Map();
    const lines = p.lines.map((l) => {
      const q = l.confirmed_quantity || l.quantity;
      let input = null;
      if (p.state === 'PLACED') {
        input = el('input', {
          type: 'number', min: '0', step: '1', value: String(l.quantity), inputmode: 'numeric', class: 'num',
          'aria-label': l.weighed ? L('实际重量（克）', 'Actual grams') : L('可供数量', 'Units you can fill'),
          'data-line': `${p.parcel_id}:${l.item_id}`,
        });
        inputs.set(l.item_id, { input, line: l });
      }
      return el('div', { class: 'basket-line' },
        el('span', null, l.name, ' × ', quantityText(l.weighed, q, l.unit)),
        input ? el('label', { class: 'inline' }, l.weighed ? L('实重 g', 'Actual g') : L('数量', 'Units'), ' ', input) : el('span', null, yuan(l.confirmed_amount_fen || l.amount_fen)));
    });
    const reason = el('input', { type: 'text', 'aria-label': L('拒绝原因', 'Reason for rejecting'), 'data-placeholder': '', placeholder: L('拒绝原因', 'Reason'), 'data-reason': p.parcel_id });

    async function confirm(button) {
      // Only lines that differ from the order are sent; the rest are confirmed as ordered.
      const body = { lines: [] };
      for (const [item_id, { input, line }] of inputs) {
        const v = Number(input.value);
        if (!Number.isInteger(v) || v < 0) {
          showMessage(msg, 'error', `${line.name}: ${L('请输入整数', 'enter a whole number')}`);
          return;
        }
        if (v !== line.quantity) body.lines.push({ item_id, quantity: v });
      }
      const key = `confirm:${p.parcel_id}:${JSON.stringify(body.lines)}`;
      body.request_id = requestId(key);
      button.disabled = true;
      const res = await api('POST', `/api/v1/supplier/parcels/${encodeURIComponent(p.parcel_id)}/confirm`, body);
      settle(key, res);
      button.disabled = false;
      if (res && res.ok) { reload(); return; }
      showError(msg, res);
    }
    async function act(kind, button, extra) {
      const key = `${kind}:${p.parcel_id}`;
      button.disabled = true;
      const res = await api('POST', `/api/v1/supplier/parcels/${encodeURIComponent(p.parcel_id)}/${kind}`, { request_id: requestId(key), ...extra });
      settle(key, res);
      button.disabled = false;
      if (res && res.ok) { reload(); return; }
      showError(msg, res);
    }

    return el('div', { class: 'order', 'data-parcel-id': p.parcel_id, 'data-state': p.state },
      el('div', { class: 'order-head' }, el('span', null, addressText(p.address), ' ', el('span', { class: 'order-id' }, '…' + p.parcel_id.slice(-6))), chip(p.state)),
      el('div', { class: 'muted' }, yuan(p.total_fen), p.round_id ? ` · ${L('轮次', 'Round')} ${p.round_id}` : '',
        p.confirm_by && p.state === 'PLACED' ? ` · ${L('确认截止', 'Confirm by')} ${when(p.confirm_by)}` : ''),
      lines,
      p.reason ? el('div', { class: 'reason' }, p.reason) : null,
      p.state === 'PLACED' ? el('div', { class: 'actions wrap' },
        el('button', { type: 'button', class: 'primary', 'data-confirm': p.parcel_id, onclick: (e) => confirm(e.currentTarget) }, L('确认', 'Confirm')),
        reason,
        el('button', {
          type: 'button', class: 'danger', 'data-reject': p.parcel_id, onclick: (e) => {
            if (!reason.value.trim()) { showMessage(msg, 'error', L('请填写拒绝原因', 'Give a reason for rejecting')); return; }
            act('reject', e.currentTarget, { reason: reason.value.trim() });
          },
        }, L('拒绝', 'Reject'))) : null,
      p.state === 'CONFIRMED' ? el('div', { class: 'actions' },
        el('button', { type: 'button', class: 'primary', 'data-ready': p.parcel_id, onclick: (e) => act('ready', e.currentTarget, {}) },
          L('已送到小区门口', 'Handed over at the gate'))) : null,
      msg);
  }

  async function loadItems() {
    const res = await api('GET', '/api/v1/supplier/items');
    if (!res || !res.ok) {
      const msg = el('div', { class: 'message' });
      showError(msg, res);
      $('items').replaceChildren(msg);
      return;
    }
    $('items').replaceChildren(...res.data.items.map(renderItem));
  }

  function renderItem(it) {
    const msg = el('div', { class: 'message', role: 'status' });
    const per = it.weighed ? '/kg' : `/${unitName(it.unit)}`;
    const unit = it.weighed ? 'g' : unitName(it.unit);
    const stockText = el('span', { 'data-stock-now': it.item_id }, `${L('库存', 'Stock')} ${it.stock} ${unit}`);
    const price = el('input', { type: 'number', min: '0', step: '0.01', value: (it.current_price_fen / 100).toFixed(2), class: 'num', 'aria-label': L('现价（元）', 'Price (yuan)'), 'data-price': it.item_id });
    const delta = el('input', { type: 'number', step: '1', class: 'num', placeholder: '+/-', 'aria-label': L('增减库存', 'Add or remove stock'), 'data-delta': it.item_id });
    const why = el('input', { type: 'text', placeholder: L('原因：进货/损耗/盘点', 'Why: delivery, spoiled, recount'), 'data-delta-reason': it.item_id });

    async function savePrice(button) {
      const fen = Math.round(Number(price.value) * 100);
      if (!Number.isFinite(fen) || fen < 0) { showMessage(msg, 'error', L('请输入价格', 'Enter a price')); return; }
      const body = { current_price_fen: fen };
      const key = `price:${it.item_id}:${fen}`;
      body.request_id = requestId(key);
      button.disabled = true;
      const res = await api('PATCH', `/api/v1/supplier/items/${encodeURIComponent(it.item_id)}`, body);
      settle(key, res);
      button.disabled = false;
      if (res && res.ok) showMessage(msg, 'ok', L('价格已保存', 'Price saved'));
      else showError(msg, res);
    }
    // Stock changes by what came in or went out, never by overwriting the number on the screen,
    // which may be older than the reservations residents made meanwhile.
    async function adjust(button) {
      const d = Number(delta.value);
      if (!Number.isInteger(d) || d === 0) { showMessage(msg, 'error', L('请输入增减数量', 'Enter how much came in (+) or went (-)')); return; }
      const body = { delta: d, reason: why.value.trim() };
      const key = `stock:${it.item_id}:${JSON.stringify(body)}`;
      body.request_id = requestId(key);
      button.disabled = true;
      const res = await api('POST', `/api/v1/supplier/items/${encodeURIComponent(it.item_id)}/stock`, body);
      settle(key, res);
      button.disabled = false;
      if (!res || !res.ok) { showError(msg, res); return; }
      stockText.textContent = `${L('库存', 'Stock')} ${res.data.stock} ${unit}`;
      delta.value = '';
      why.value = '';
      showMessage(msg, 'ok', L('库存已更新', 'Stock updated'));
    }
    return el('div', { class: 'item edit', 'data-item': it.item_id },
      el('div', null, el('div', { class: 'name' }, it.name),
        el('div', { class: 'muted' }, L('参考价', 'Ref.'), ' ', yuan(it.reference_price_fen), per, ' · ', stockText)),
      el('div', { class: 'actions wrap' },
        el('label', { class: 'inline' }, '¥', price, per),
        el('button', { type: 'button', 'data-save-price': it.item_id, onclick: (e) => savePrice(e.currentTarget) }, L('改价', 'Set price'))),
      el('div', { class: 'actions wrap' },
        el('label', { class: 'inline' }, L('增减', 'Change'), ' ', delta, unit), why,
        el('button', { type: 'button', 'data-adjust': it.item_id, onclick: (e) => adjust(e.currentTarget) }, L('调整库存', 'Adjust stock'))),
      msg);
  }

  // refresh brings the counts and the list up to date. A list shown further than its first page
  // is left as it is: reloading it would drop the pages the supplier asked for. An action or a
  // tab reloads it from the top.
  function refresh() {
    loadQueue();
    if (!state.paged) loadParcels();
  }
  function reload() {
    state.paged = false;
    refresh();
  }

  renderTabs();
  refresh();
  loadItems();
  setInterval(() => { if (!document.hidden && !document.activeElement.matches('input')) refresh(); }, 15000);
})();
