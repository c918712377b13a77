// The community worker's console: the household roster with its flags, issuing (or re-issuing)
// a household's sign-in code as a printable notice with a QR code, and ordering on behalf of a
// household that cannot order itself.
'use strict';

(async () => {
  const { L, $, el, api, showError, session, topBar } = window.Doorstep;
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
        el('span', { class: 'muted' }, h.occupied ? `${h.residents} ${L('人', 'people')}` : L('空置', 'Empty'))),
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
    state.proxy = h.household_id;
    $('proxy-card').hidden = false;
    $('proxy-household').textContent = `${L('为', 'For ')}${h.household_id}${L(' 下单（记录为社工代下单）', ' (recorded as placed by you)')}`;
    if (!shop) {
      shop = window.Doorstep.shop({
        catalog: 'proxy-catalog', basket: 'proxy-basket', total: 'proxy-total', button: 'proxy-place', message: 'proxy-message',
        household: () => state.proxy,
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

  $('filter').addEventListener('input', render);
  $('find').addEventListener('submit', find);
  $('more').addEventListener('click', () => loadRoster(true));
  $('print').addEventListener('click', () => window.print());
  loadRoster(false);
})();
