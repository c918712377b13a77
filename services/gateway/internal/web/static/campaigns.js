// The worker's free-distribution campaigns: define a pack (one supplier's items, the community's
// donated stock first) and who gets one, launch it, follow each building's progress and each
// household's pack, retry the missed ones, export the roster, and hand the donated packs over at
// the gate. Every change carries a request id kept until its outcome is known, so a retry after a
// network error never launches or retries twice.
'use strict';

window.Doorstep.campaigns = () => {
  const { L, $, el, unitName, when, api, newRequestId, outcomeUnknown, showMessage, showError, splitList } = window.Doorstep;
  const STATES = {
    DRAFT: ['草稿', 'Draft', 'waiting'], LAUNCHING: ['正在生成包裹', 'Making packs', 'moving'], LAUNCHED: ['已发放', 'Launched', 'good'],
  };
  const ROSTER = {
    PACKING: ['备货中', 'Packing', 'waiting'], ON_THE_WAY: ['配送途中', 'On the way', 'moving'], DELIVERED: ['已送达', 'Delivered', 'good'],
    FAILED: ['未送达', 'Failed', 'bad'], MISSED: ['未发出', 'Missed', 'bad'],
  };
  const COUNTS = [['targeted', '户数', 'Homes'], ['packing', '备货', 'Packing'], ['on_the_way', '途中', 'On way'],
    ['delivered', '送达', 'Done'], ['failed', '未送达', 'Failed'], ['missed', '未发出', 'Missed']];
  const FLAGS = [['OVER_80', '80岁以上', 'Over 80'], ['LIVES_ALONE', '独居', 'Lives alone'], ['CHRONICALLY_ILL', '慢性病', 'Chronically ill'],
    ['QUARANTINED', '隔离中', 'Quarantined']];
  const KINDS = { donations: L('社区捐赠', 'Donated stock'), supermarket: L('超市', 'Supermarket'), pharmacy: L('药房', 'Pharmacy') };
  const PAGE = 100;
  const REFRESH_MS = 30000; // deliveries move the roster on through the day
  const LAUNCHING_MS = 3000; // packs are being made: follow closely until they all are

  const state = {
    suppliers: new Map(), items: new Map(), campaigns: [], open: null, roster: [], next: '', pages: 0,
    pending: new Map(), // action key -> request id, kept while the outcome is unknown
    fast: null, busy: false,
  };
  const enc = encodeURIComponent;
  function requestId(key) {
    if (!state.pending.has(key)) state.pending.set(key, newRequestId());
    return state.pending.get(key);
  }
  const settle = (key, res) => { if (!outcomeUnknown(res)) state.pending.delete(key); };
  const tag = (map, s) => {
    const [zh, en, tone] = map[s] || [s || '—', s || '—', ''];
    return el('span', { class: `chip ${tone}` }, L(zh, en));
  };
  const supplierOf = (id) => state.suppliers.get(id) || { supplier_id: id, name: id, kind: '', items: [] };
  const itemName = (id) => (state.items.get(id) || {}).name || id;
  const flagName = (f) => { const x = FLAGS.find(([k]) => k === f); return x ? L(x[1], x[2]) : f; };
  const place = (a) => `${a.building}${L('栋', '-')}${a.unit}${L('单元', '-')}${a.room}`;
  const message = () => $('campaign-message');

  // ---- the pack and the target ----

  async function loadCatalog() {
    const res = await api('GET', '/api/v1/catalog');
    if (!res || !res.ok) { showError($('campaign-form-message'), res); return; }
    // Donated stock first: most packs are made of it.
    const sups = [...res.data.suppliers].sort((a, b) => (b.kind === 'donations') - (a.kind === 'donations'));
    state.suppliers.clear();
    state.items.clear();
    for (const s of sups) {
      state.suppliers.set(s.supplier_id, s);
      for (const it of s.items) state.items.set(it.item_id, it);
    }
    const sel = $('campaign-supplier');
    const keep = sel.value;
    sel.replaceChildren(...sups.map((s) => el('option', { value: s.supplier_id }, `${s.name} · ${KINDS[s.kind] || s.kind}`)));
    if (keep && state.suppliers.has(keep)) sel.value = keep;
    renderItems();
    renderCampaigns();
    const open = state.campaigns.find((c) => c.campaign_id === state.open);
    if (open) renderDetail(open);
  }

  // A pack has nothing to weigh: weighed goods are left out. Quantities already entered survive a
  // fresh catalog (the stock figures change under the worker's hands).
  function renderItems() {
    const entered = new Map([...document.querySelectorAll('[data-pack-item]')].map((i) => [i.dataset.packItem, i.value]));
    const s = state.suppliers.get($('campaign-supplier').value);
    const items = s ? s.items.filter((it) => !it.weighed) : [];
    $('campaign-items').replaceChildren(items.length
      ? el('div', { class: 'stack' }, el('span', { class: 'hint' }, L('每户数量', 'Quantity per household')),
        items.map((it) => el('label', { class: 'pick' },
          el('span', null, it.name, el('span', { class: 'muted' }, ` · ${L('库存', 'stock')} ${it.stock} ${unitName(it.unit)}`)),
          el('input', {
            type: 'number', class: 'num', min: '0', max: '1000', step: '1', value: entered.get(it.item_id) || '0', inputmode: 'numeric',
            'data-pack-item': it.item_id, 'aria-label': `${it.name}: ${L('每户数量', 'quantity per household')}`,
          }))))
      : el('p', { class: 'muted' }, L('没有可发放的物品', 'No items to give')));
  }

  let creating = null; // {key, requestId}
  async function create(e) {
    e.preventDefault();
    const msg = $('campaign-form-message');
    const pack = [...document.querySelectorAll('[data-pack-item]')]
      .map((i) => ({ item_id: i.dataset.packItem, quantity: Number(i.value) }))
      .filter((l) => l.quantity !== 0);
    if (!pack.length) { showMessage(msg, 'error', L('请至少选择一种物品', 'Choose at least one item')); return; }
    const body = {
      name: $('campaign-name').value.trim(), pack,
      target: {
        buildings: splitList($('campaign-buildings').value),
        flags: [...document.querySelectorAll('[data-flag]:checked')].map((x) => x.value),
        include_unknown_occupancy: $('campaign-unknown').checked,
      },
    };
    const key = JSON.stringify(body);
    if (!creating || creating.key !== key) creating = { key, requestId: newRequestId() };
    body.request_id = creating.requestId;
    $('campaign-create').disabled = true;
    const res = await api('POST', '/api/v1/worker/campaigns', body);
    $('campaign-create').disabled = false;
    if (res && res.ok) {
      creating = null;
      $('campaign-form').reset(); // number inputs back to 0 before renderItems reads them
      $('campaign-form').hidden = true;
      showMessage(msg, '', '');
      state.campaigns.unshift(res.data);
      openCampaign(res.data.campaign_id);
      return;
    }
    if (!outcomeUnknown(res)) creating = null;
    // pack[1].quantity -> the item's name, so the worker knows which line is meant.
    const [text, fields] = window.Doorstep.errorText(res);
    showMessage(msg, 'error', text, fields.map((f) => f.replace(/^pack\[(\d+)\]/, (m, i) => (pack[+i] ? itemName(pack[+i].item_id) : m))));
  }

  // ---- the campaigns ----

  async function loadCampaigns() {
    const res = await api('GET', '/api/v1/worker/campaigns');
    if (!res || !res.ok) { const m = el('div', { class: 'message' }); showError(m, res); $('campaigns').replaceChildren(m); return; }
    state.campaigns = res.data.campaigns;
    renderCampaigns();
  }

  function renderCampaigns() {
    $('campaigns').replaceChildren(...(state.campaigns.length
      ? state.campaigns.map((c) => el('button', {
        type: 'button', class: c.campaign_id === state.open ? 'round on' : 'round', 'data-campaign': c.campaign_id,
        'aria-pressed': String(c.campaign_id === state.open), onclick: () => openCampaign(c.campaign_id),
      }, el('strong', null, c.name), ' ', tag(STATES, c.state),
      el('div', { class: 'muted' }, supplierOf(c.supplier_id).name, ' · ', c.state === 'DRAFT'
        ? L('尚未发放', 'not sent yet')
        : `${c.counts.delivered}/${c.counts.targeted} ${L('户已送达', 'delivered')}` +
          (c.counts.missed ? ` · ${c.counts.missed} ${L('户未发出', 'missed')}` : '') +
          (c.counts.failed ? ` · ${c.counts.failed} ${L('户未送达', 'failed')}` : ''))))
      : [el('p', { class: 'muted' }, L('还没有活动', 'No campaigns yet'))]));
  }

  function openCampaign(id) {
    state.open = id;
    state.roster = [];
    state.next = '';
    $('roster-status').value = '';
    $('roster-building').value = '';
    showMessage(message(), '', '');
    const c = state.campaigns.find((x) => x.campaign_id === id);
    if (c) renderDetail(c);
    renderCampaigns();
    $('campaign-detail').scrollIntoView({ block: 'start' });
    loadDetail();
    loadRoster(false);
  }

  async function loadDetail() {
    const id = state.open;
    if (!id) return;
    const res = await api('GET', `/api/v1/worker/campaigns/${enc(id)}`);
    if (state.open !== id) return;
    if (!res || !res.ok) { showError(message(), res); return; }
    update(res.data);
  }

  // update puts a fresh campaign in the list and the detail, and follows a launch in progress.
  function update(c) {
    const i = state.campaigns.findIndex((x) => x.campaign_id === c.campaign_id);
    if (i >= 0) state.campaigns[i] = c; else state.campaigns.unshift(c);
    renderCampaigns();
    if (c.campaign_id !== state.open) return;
    renderDetail(c);
    clearTimeout(state.fast);
    if (c.state === 'LAUNCHING') state.fast = setTimeout(() => { loadDetail(); if (state.pages <= 1) loadRoster(false); }, LAUNCHING_MS);
  }

  function countChips(counts) {
    return el('div', { class: 'chips' }, COUNTS.map(([k, zh, en]) => el('span', { class: 'chip', 'data-count': k }, `${L(zh, en)} ${counts[k]}`)));
  }

  function renderDetail(c) {
    $('campaign-detail').hidden = false;
    $('campaign-detail').dataset.campaign = c.campaign_id;
    $('campaign-detail').dataset.state = c.state;
    $('campaign-detail-title').textContent = c.name;
    const s = supplierOf(c.supplier_id);
    const t = c.target;
    const whom = [
      t.buildings.length ? `${L('楼栋', 'Buildings')} ${t.buildings.join(', ')}` : L('全部楼栋', 'Every building'),
      t.flags.length ? t.flags.map(flagName).join(L(' 或 ', ' or ')) : L('所有已入住住户', 'every occupied household'),
      t.include_unknown_occupancy ? L('含入住情况未知的', 'incl. occupancy unknown') : null,
    ].filter(Boolean).join(' · ');
    $('campaign-summary').replaceChildren(...[
      el('div', null, tag(STATES, c.state), ' ', s.name, ' ', el('span', { class: 'en' }, KINDS[s.kind] || s.kind)),
      el('div', null, L('每户', 'Each household'), ': ', c.pack.map((l) => `${itemName(l.item_id)} × ${l.quantity}`).join(L('、', ', '))),
      el('div', { class: 'muted' }, whom),
      el('div', { class: 'muted' }, `${L('创建', 'Created')} ${when(c.created_at)}`,
        c.launched_at ? ` · ${L('发放', 'Launched')} ${when(c.launched_at)}` : ''),
      c.state === 'DRAFT' ? null : countChips(c.counts),
    ].filter(Boolean)); // replaceChildren would print a null
    $('campaign-launch').hidden = c.state !== 'DRAFT';
    // Only the donated stock is handed over by the workers; a supplier's staff hand over their own.
    $('campaign-handover').hidden = c.state === 'DRAFT' || s.kind !== 'donations';
    $('campaign-retry').hidden = c.state !== 'LAUNCHED' || !c.counts.missed;
    $('campaign-export').hidden = c.state === 'DRAFT';
    $('campaign-export').href = `/api/v1/worker/campaigns/${enc(c.campaign_id)}/roster.csv`;
    for (const b of ['campaign-launch', 'campaign-handover', 'campaign-retry']) $(b).disabled = state.busy;
  }

  // ---- the roster ----

  async function loadRoster(more) {
    const id = state.open;
    if (!id) return;
    const q = new URLSearchParams({ page_size: String(PAGE) });
    if ($('roster-status').value) q.set('status', $('roster-status').value);
    if ($('roster-building').value) q.set('building', $('roster-building').value);
    if (more && state.next) q.set('page_token', state.next);
    const res = await api('GET', `/api/v1/worker/campaigns/${enc(id)}/roster?${q}`);
    if (state.open !== id) return;
    if (!res || !res.ok) { const m = el('div', { class: 'message' }); showError(m, res); $('campaign-roster').replaceChildren(m); return; }
    state.roster = more ? state.roster.concat(res.data.entries) : res.data.entries;
    state.pages = more ? state.pages + 1 : 1;
    state.next = res.data.next_page_token;
    $('campaign-roster-more').hidden = !state.next;
    renderBuildings(res.data.buildings, res.data.totals);
    renderRoster();
  }

  function renderBuildings(buildings, totals) {
    const sel = $('roster-building');
    const keep = sel.value;
    sel.replaceChildren(el('option', { value: '' }, L('全部楼栋', 'Every building')),
      ...buildings.map((b) => el('option', { value: b.building }, `${b.building}${L('栋', '')}`)));
    sel.value = buildings.some((b) => b.building === keep) ? keep : '';
    if (!buildings.length) {
      $('campaign-progress').replaceChildren(el('p', { class: 'muted' }, L('发放后显示', 'Shown once launched')));
      return;
    }
    const row = (head, counts, attrs) => el('tr', attrs || null, el('th', { scope: 'row' }, head), COUNTS.map(([k]) => el('td', null, counts[k])));
    // Wider than a phone in English: it scrolls sideways inside its box, not the page.
    $('campaign-progress').replaceChildren(el('div', { class: 'scroll' }, el('table', { class: 'grid' },
      el('thead', null, el('tr', null, el('th', { scope: 'col' }, L('楼', 'Bldg')), COUNTS.map(([, zh, en]) => el('th', { scope: 'col' }, L(zh, en))))),
      el('tbody', null, buildings.map((b) => row(b.building, b.counts, { 'data-building': b.building }))),
      el('tfoot', null, row(L('合计', 'All'), totals)))));
  }

  function renderRoster() {
    if (!state.roster.length) {
      $('campaign-roster').replaceChildren(el('p', { class: 'muted' }, L('没有住户', 'No households')));
      return;
    }
    $('campaign-roster').replaceChildren(el('table', { class: 'grid roster' },
      el('thead', null, el('tr', null, el('th', { scope: 'col' }, L('住户', 'Household')), el('th', { scope: 'col' }, L('状态', 'Status')),
        el('th', { scope: 'col' }, L('原因', 'Reason')))),
      el('tbody', null, state.roster.map((e) => el('tr', { 'data-roster': e.household_id, 'data-status': e.status },
        el('td', { title: e.household_id }, place(e.address), e.priority ? el('span', { class: 'chip waiting' }, L('优先', 'Priority')) : null),
        el('td', null, tag(ROSTER, e.status), e.attempt > 1 ? el('div', { class: 'muted' }, `${L('第', 'Attempt ')}${e.attempt}${L(' 次', '')}`) : null),
        el('td', { class: 'reason' }, e.reason,
          e.status === 'FAILED' ? el('div', { class: 'muted' }, L('下一轮再送', 'goes again next round')) : null,
          e.status === 'MISSED' ? el('div', { class: 'muted' }, L('可重发', 'can be retried')) : null))))));
  }

  // ---- actions ----

  async function act(button, key, path, body, done) {
    if (state.busy) return;
    const id = state.open;
    state.busy = true;
    button.disabled = true;
    showMessage(message(), '', L('请稍候…', 'Please wait…'));
    const res = await api('POST', `/api/v1/worker/campaigns/${enc(id)}/${path}`, body);
    state.busy = false;
    button.disabled = false;
    if (key) settle(key, res);
    if (state.open !== id) return;
    if (!res || !res.ok) { showError(message(), res); return; }
    done(res.data);
    loadRoster(false);
  }

  function launch() {
    if (!window.confirm(L('开始发放？每个符合条件的住户都会生成一个免费包裹，发放后不能撤回。', 'Launch? Every targeted household gets a free pack; this cannot be undone.'))) return;
    const key = `launch:${state.open}`;
    act($('campaign-launch'), key, 'launch', { request_id: requestId(key) }, (c) => {
      showMessage(message(), 'ok', L('已开始发放，正在生成包裹', 'Launched: the packs are being made'));
      update(c);
    });
  }

  function retry() {
    const key = `retry:${state.open}`;
    act($('campaign-retry'), key, 'retry-missed', { request_id: requestId(key) }, (d) => {
      showMessage(message(), 'ok', `${L('已为', 'Fresh packs for')} ${d.retried} ${L('户重新生成包裹，随下一轮送出', 'households, going with the next round')}`);
      update(d.campaign);
    });
  }

  // Handing over is safe to press again: each pack's request id comes from the pack itself.
  function handOver() {
    act($('campaign-handover'), null, 'hand-over', undefined, (d) => {
      const lines = d.failures.map((f) => `${f.household_id}: ${f.message}`);
      if (d.failed > d.failures.length) lines.push(`… ${d.failed - d.failures.length} ${L('个未列出', 'more')}`);
      if (d.remaining) lines.push(`${d.remaining} ${L('个尚未处理，请再按一次', 'not reached yet: press again')}`);
      const text = d.waiting === 0
        ? L('没有等待交接的包裹', 'No packs waiting to be handed over')
        : `${L('已交到门口', 'Handed over')} ${d.handed_over} / ${d.waiting}${d.failed ? `, ${L('失败', 'failed')} ${d.failed}` : ''}`;
      showMessage(message(), d.failed || d.remaining ? 'error' : 'ok', text, lines);
      loadDetail();
    });
  }

  // ---- wiring ----

  $('roster-status').replaceChildren(el('option', { value: '' }, L('全部状态', 'Every status')),
    el('option', { value: 'MISSED,FAILED' }, L('未送到（未发出或未送达）', 'Not delivered (missed or failed)')),
    ...Object.entries(ROSTER).map(([k, [zh, en]]) => el('option', { value: k }, L(zh, en))));
  $('campaign-flags').replaceChildren(...FLAGS.map(([k, zh, en]) => el('label', { class: 'check' },
    el('input', { type: 'checkbox', value: k, 'data-flag': k }), L(zh, en))));
  $('campaign-new').addEventListener('click', () => {
    $('campaign-form').hidden = !$('campaign-form').hidden;
    if (!$('campaign-form').hidden) {
      loadCatalog(); // today's stock
      $('campaign-name').focus();
    }
  });
  $('campaign-supplier').addEventListener('change', renderItems);
  $('campaign-form').addEventListener('submit', create);
  $('campaign-launch').addEventListener('click', launch);
  $('campaign-retry').addEventListener('click', retry);
  $('campaign-handover').addEventListener('click', handOver);
  $('roster-status').addEventListener('change', () => loadRoster(false));
  $('roster-building').addEventListener('change', () => loadRoster(false));
  $('roster-filter').addEventListener('submit', (e) => e.preventDefault());
  $('campaign-roster-more').addEventListener('click', () => loadRoster(true));
  setInterval(() => {
    if (document.hidden) return;
    loadCampaigns();
    if (state.open) {
      loadDetail();
      if (state.pages <= 1) loadRoster(false); // keeps the pages the worker opened
    }
  }, REFRESH_MS);
  loadCatalog();
  loadCampaigns();
};
