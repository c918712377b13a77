// The community worker's console: the household roster with its flags, issuing (or re-issuing)
// a household's sign-in code as a printable notice with a QR code, ordering on behalf of a
// household that cannot order itself, free-distribution campaigns (campaigns.js), and notices.
'use strict';

(async () => {
  const { L, $, el, when, api, newRequestId, outcomeUnknown, showMessage, showError, splitList, session, topBar } = window.Doorstep;
  const me = await session('WORKER');
  if (!me) return;
  topBar(me, `${L('社工', 'Worker')} ${me.name || me.account_id}`);

  const state = { households: [], next: '', proxy: null };

  async function loadRoster(more) {
    const res = await api('GET', `/api/v1/worker/households?page_size=100${more && state.next ? `&page_token=${encodeURIComponent(state.next)}` : ''}`);
    if (!res || !res.ok) { const m = el('div', { class: 'message' }); showError(m, res); $('roster').replaceChildren(m); return; }
    state.households = more ? state.households.concat(res.data.households) : res.data.households;
    state.next = res.data.next_page_token;
    $('more').hidden = !state.next;
    render();
  }

  const FLAGS = [['over_80', '80岁以上', 'Over 80'], ['lives_alone', '独居', 'Lives alone'], ['chronically_ill', '慢性病', 'Chronically ill'],
    ['quarantined', '隔离中', 'Quarantined']];

  function render() {
    const f = $('filter').value.trim().toLowerCase();
    const shown = state.households.filter((h) => !f || h.household_id.includes(f)).slice(0, 200);
    $('roster').replaceChildren(...shown.map((h) => el('div', { class: 'order', 'data-household': h.household_id },
      el('div', { class: 'order-head' }, el('strong', null, h.household_id),
        el('span', { class: 'muted' }, h.occupied ? `${h.residents} ${L('人', h.residents === 1 ? 'person' : 'people')}` : L('空置', 'Empty'))),
      el('div', { class: 'chips' }, FLAGS.filter(([k]) => h[k]).map(([, zh, en]) => el('span', { class: 'chip waiting' }, L(zh, en)))),
      el('div', { class: 'actions wrap' },
        el('button', { type: 'button', 'data-code': h.household_id, onclick: () => issue(h) }, L('发放/重发登录码', 'Issue / re-issue code')),
        h.occupied ? el('button', { type: 'button', 'data-proxy': h.household_id, onclick: () => proxy(h) }, L('代下单', 'Order for them')) : null))));
  }

  async function issue(h) {
    const detail = await api('GET', `/api/v1/worker/households/${encodeURIComponent(h.household_id)}`);
    if (detail && detail.ok && detail.data.code_issued_at &&
      !window.confirm(L('此户已有登录码。重发后旧码和已登录的手机都将失效。继续？', 'This household has a code. Re-issuing ends the old code and signs its phones out. Go on?'))) return;
    const res = await api('POST', `/api/v1/worker/households/${encodeURIComponent(h.household_id)}/code`);
    $('code-card').hidden = false;
    if (!res || !res.ok) { const m = el('div', { class: 'message' }); showError(m, res); $('code-panel').replaceChildren(m); return; }
    const c = res.data;
    const a = h.address;
    $('code-panel').replaceChildren(
      el('p', null, `${a.building}${L('栋', '-')}${a.unit}${L('单元', '-')}${a.room}${L('室', '')} (${c.household_id})`),
      el('p', null, L('用手机扫描二维码，或打开下面的网址输入登录码。请妥善保管，不要给他人。', 'Scan the QR code with a phone, or open the address below and enter the code. Keep it to yourself.')),
      el('p', { class: 'code', id: 'issued-code' }, c.code),
      el('img', { src: c.qr_url, alt: L('登录二维码', 'Sign-in QR code'), width: '240', height: '240', class: 'qr' }),
      el('p', { class: 'muted link-text' }, c.link));
    $('code-card').scrollIntoView({ block: 'start' });
  }

  let shop = null;
  function proxy(h) {
    if (state.proxy !== h.household_id) $('proxy-phone').checked = false; // each household's order says how it came
    state.proxy = h.household_id;
    $('proxy-card').hidden = false;
    $('proxy-household').textContent = `${L('为', 'For ')}${h.household_id}${L(' 下单（记录为社工代下单）', ' (recorded as placed by you)')}`;
    if (!shop) {
      shop = window.Doorstep.shop({
        catalog: 'proxy-catalog', basket: 'proxy-basket', total: 'proxy-total', button: 'proxy-place', message: 'proxy-message',
        household: () => state.proxy,
        channel: () => ($('proxy-phone').checked ? 'PHONE' : 'WORKER'),
      });
    } else {
      shop.renderBasket();
    }
    $('proxy-card').scrollIntoView({ block: 'start' });
  }

  // A full household id not among the loaded pages is fetched by itself.
  async function find(e) {
    e.preventDefault();
    const id = $('filter').value.trim().toLowerCase();
    $('find-message').replaceChildren();
    if (!id || state.households.some((h) => h.household_id === id)) { render(); return; }
    const res = await api('GET', `/api/v1/worker/households/${encodeURIComponent(id)}`);
    if (!res || !res.ok) { showError($('find-message'), res); return; }
    state.households.unshift(res.data);
    render();
  }

  // ---- notices ----

  const notices = { posting: null, withdrawing: new Map() }; // request ids kept while an outcome is unknown

  async function loadNotices() {
    const res = await api('GET', '/api/v1/worker/notices');
    if (!res || !res.ok) { const m = el('div', { class: 'message' }); showError(m, res); $('worker-notices').replaceChildren(m); return; }
    $('worker-notices').replaceChildren(...(res.data.notices.length
      ? res.data.notices.map(renderNotice)
      : [el('p', { class: 'muted' }, L('还没有通知', 'No notices yet'))]));
  }

  function renderNotice(n) {
    const msg = el('div', { class: 'message', role: 'status' });
    return el('div', { class: 'order notice', 'data-notice-id': n.notice_id, 'data-withdrawn': String(Boolean(n.withdrawn_at)) },
      el('div', { class: 'order-head' }, el('strong', null, n.title),
        n.withdrawn_at ? el('span', { class: 'chip bad' }, L('已撤回', 'Withdrawn')) : el('span', { class: 'chip good' }, L('生效中', 'In force'))),
      el('div', { class: 'muted' }, when(n.posted_at), ' · ',
        n.buildings.length ? `${L('楼栋', 'Buildings')} ${n.buildings.join(', ')}` : L('全部楼栋', 'Every building'), ' · ', n.posted_by.id),
      el('p', { class: 'notice-text' }, n.text),
      n.withdrawn_at
        ? el('div', { class: 'muted' }, `${L('撤回于', 'Withdrawn')} ${when(n.withdrawn_at)}`)
        : el('div', { class: 'actions' }, el('button', {
          type: 'button', class: 'danger', 'data-withdraw': n.notice_id, onclick: (e) => withdraw(n, e.currentTarget, msg),
        }, L('撤回', 'Withdraw'))),
      msg);
  }

  async function postNotice(e) {
    e.preventDefault();
    const body = { title: $('notice-title').value.trim(), text: $('notice-text').value.trim(), buildings: splitList($('notice-buildings').value) };
    const key = JSON.stringify(body);
    if (!notices.posting || notices.posting.key !== key) notices.posting = { key, requestId: newRequestId() };
    body.request_id = notices.posting.requestId;
    $('notice-post').disabled = true;
    const res = await api('POST', '/api/v1/worker/notices', body);
    $('notice-post').disabled = false;
    if (res && res.ok) {
      notices.posting = null;
      $('notice-form').reset();
      showMessage($('notice-message'), 'ok', L('已发布，住户页面将显示此通知', 'Posted: residents see it on their page'));
      loadNotices();
      return;
    }
    if (!outcomeUnknown(res)) notices.posting = null;
    showError($('notice-message'), res);
  }

  async function withdraw(n, button, msg) {
    if (!window.confirm(L(`撤回通知「${n.title}」？住户将不再看到它。`, `Withdraw "${n.title}"? Residents will no longer see it.`))) return;
    if (!notices.withdrawing.has(n.notice_id)) notices.withdrawing.set(n.notice_id, newRequestId());
    button.disabled = true;
    const res = await api('POST', `/api/v1/worker/notices/${encodeURIComponent(n.notice_id)}/withdraw`, { request_id: notices.withdrawing.get(n.notice_id) });
    if (!outcomeUnknown(res)) notices.withdrawing.delete(n.notice_id);
    if (res && res.ok) { loadNotices(); return; }
    button.disabled = false;
    showError(msg, res);
  }

  $('notice-form').addEventListener('submit', postNotice);
  loadNotices();
  window.Doorstep.campaigns();

  $('filter').addEventListener('input', render);
  $('find').addEventListener('submit', find);
  $('more').addEventListener('click', () => loadRoster(true));
  $('print').addEventListener('click', () => window.print());
  loadRoster(false);
})();
