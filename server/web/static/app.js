// Skill Share web app: plain JS over the SDK bundle (window.SkillShare).
// No inline scripts (CSP script-src 'self'); user text only ever goes
// through textContent.
(function () {
  'use strict';

  const { SkillShareClient, ApiError } = window.SkillShare;
  const client = new SkillShareClient({ refreshMode: 'cookie' });

  const TYPING_IDLE_MS = 4000;
  const TYPING_SHOWN_MS = 6000;
  const HISTORY_PAGE = 50;
  const INFO_BANNER_MS = 5000;
  const FALLBACK_CATEGORIES = ['programming', 'data', 'design', 'music', 'languages', 'business',
    'writing', 'cooking', 'fitness', 'crafts', 'science', 'other'];

  const LEVEL_LABELS = { all: 'All levels', beginner: 'Beginner', intermediate: 'Intermediate', advanced: 'Advanced', expert: 'Expert' };
  const MODE_LABELS = { online: 'Online', in_person: 'In person', hybrid: 'Online or in person' };
  const STATUS_LABELS = { pending: 'pending', accepted: 'accepted', declined: 'declined', cancelled: 'cancelled', completed: 'completed' };
  const categoryNames = new Map();
  const labelOf = (labels, value) => labels[value] || (value ? String(value).replace(/_/g, ' ') : '');

  const state = {
    me: null,
    rooms: new Map(), // id -> room (with unread count)
    messages: new Map(), // room id -> Map(seq -> message)
    pending: new Map(), // room id -> Map(client_id -> {body})
    names: new Map(), // user id -> display name
    currentRoom: null,
    joined: new Set(),
    typingTimers: new Map(),
    listingsCursor: null,
    call: null,
    localStream: null,
    skills: { offered: [], wanted: [] },
    historyLoaded: new Set(), // rooms whose recent history we fetched
  };
  window.skillshareApp = { client, state };

  // ---- small helpers ------------------------------------------------------

  const $ = (id) => document.getElementById(id);

  /** Creates an element: h('li', {class: 'x', onclick: fn}, 'text', child) */
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  /** A human message for an error; "not there yet" for endpoints the server lacks. */
  function describe(err) {
    if (err instanceof ApiError) {
      if (err.status === 404 && err.code === 'not_found' && /Not found\.?$/.test(err.message)) {
        return 'This feature is not available on the server yet.';
      }
      if (err.code === 'validation_error' && Array.isArray(err.details) && err.details.length) {
        return err.details.map(humanDetail).join(' ');
      }
      if (err.code === 'rate_limited') return `Too many attempts; try again in ${err.retryAfter || 'a few'} seconds.`;
      if (err.code === 'network_error') return 'Cannot reach the server. Check your connection.';
      return err.message || err.code;
    }
    return (err && err.message) || String(err);
  }

  const FIELD_LABELS = {
    display_name: 'Name', email: 'Email', password: 'Password', new_password: 'New password',
    current_password: 'Current password', title: 'Title', description: 'Description', category: 'Category',
    tags: 'Tags', level: 'Level', mode: 'Mode', bio: 'About you', timezone: 'Time zone', languages: 'Languages',
    message: 'Message', comment: 'Comment', rating: 'Rating', body: 'Message', q: 'Search',
  };

  /** "display_name: String should have at least 1 character" -> "Name is required." */
  function humanDetail(d) {
    const key = String(d.field || '').replace(/^body\./, '').split('.')[0];
    const label = FIELD_LABELS[key] || (key ? key.replace(/_/g, ' ').replace(/^./, (c) => c.toUpperCase()) : '');
    const msg = String(d.message || 'is not valid');
    let m;
    let text;
    if ((m = /at least (\d+) characters?/.exec(msg))) text = Number(m[1]) <= 1 ? 'is required' : `must be at least ${m[1]} characters`;
    else if ((m = /at most (\d+) characters?/.exec(msg))) text = `must be at most ${m[1]} characters`;
    else if ((m = /at most (\d+) items?/.exec(msg))) text = `can have at most ${m[1]} entries`;
    else if (/Field required|missing/i.test(msg)) text = 'is required';
    else if (/valid email|email address/i.test(msg)) text = 'is not a valid email address';
    else if (/Input should be (.+)/.exec(msg)) text = `should be ${/Input should be (.+)/.exec(msg)[1].replace(/'/g, '')}`;
    else text = msg.replace(/^Value error, /, '');
    const sentence = label ? `${label} ${text.charAt(0).toLowerCase()}${text.slice(1)}` : text;
    return /[.!?]$/.test(sentence) ? sentence : `${sentence}.`;
  }

  let bannerTimer = null;
  function banner(text, kind = 'error') {
    $('banner-text').textContent = text;
    $('banner').className = `banner ${kind === 'info' ? 'info' : ''}`;
    $('banner').hidden = false;
    clearTimeout(bannerTimer);
    if (kind === 'info') bannerTimer = setTimeout(() => { $('banner').hidden = true; }, INFO_BANNER_MS);
  }
  $('banner-close').addEventListener('click', () => { $('banner').hidden = true; });

  function showError(el, err) {
    el.textContent = typeof err === 'string' ? err : describe(err);
    el.hidden = false;
  }

  function clearError(el) {
    el.textContent = '';
    el.hidden = true;
  }

  function formData(form) {
    return Object.fromEntries(new FormData(form).entries());
  }

  async function submitting(form, fn) {
    const button = form.querySelector('button[type=submit]');
    const out = form.querySelector('.form-error');
    if (out) out.textContent = '';
    button.disabled = true;
    try {
      await fn();
    } catch (err) {
      if (out) out.textContent = describe(err);
      else banner(describe(err));
    } finally {
      button.disabled = false;
    }
  }

  function timeOf(iso) {
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? '' : d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }

  async function nameOf(userId) {
    if (!userId) return 'Someone';
    if (state.names.has(userId)) return state.names.get(userId);
    try {
      const user = await client.users.get(userId);
      state.names.set(userId, user.display_name);
      return user.display_name;
    } catch {
      return 'Someone';
    }
  }

  function remember(user) {
    if (user && user.id && user.display_name) state.names.set(user.id, user.display_name);
  }

  // ---- routing ------------------------------------------------------------

  const VIEWS = ['auth', 'browse', 'requests', 'matches', 'chat', 'profile', 'user', 'admin'];
  const LOADERS = {
    browse: () => loadBrowse(true),
    requests: (arg) => loadRequests(arg),
    matches: loadMatches,
    chat: (arg) => loadChat(arg),
    profile: loadProfile,
    users: (arg) => loadUser(arg),
    admin: () => loadAudit(true),
  };
  const SECTION_OF = { users: 'user' }; // #/users/<id> shows #view-user

  function show(view) {
    $('loading').hidden = true;
    for (const v of VIEWS) $(`view-${v}`).hidden = v !== view;
    for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.view === view);
  }

  function route() {
    if (!state.me) {
      show('auth');
      return;
    }
    const [, view = 'browse', arg] = location.hash.replace(/^#/, '').split('/');
    const name = LOADERS[view] ? view : 'browse';
    if (name !== 'chat') leaveConversation();
    state.view = name;
    show(SECTION_OF[name] || name);
    Promise.resolve(LOADERS[name](arg && decodeURIComponent(arg))).catch((err) => banner(describe(err)));
  }
  window.addEventListener('hashchange', route);

  // ---- auth ---------------------------------------------------------------

  $('signin-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const form = e.currentTarget;
    submitting(form, async () => {
      const data = formData(form);
      await client.auth.login({ email: data.email, password: data.password });
      await signedIn();
    });
  });

  $('signup-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const form = e.currentTarget;
    submitting(form, async () => {
      const data = formData(form);
      await client.auth.register({ email: data.email, password: data.password, display_name: data.display_name });
      await signedIn();
      location.hash = '#/profile';
    });
  });

  $('signout').addEventListener('click', async () => {
    try {
      await client.auth.logout();
    } catch (err) {
      banner(describe(err));
    }
  });

  client.on('signedout', ({ reason }) => {
    state.me = null;
    clearAuthForms();
    state.rooms.clear();
    state.messages.clear();
    state.joined.clear();
    state.currentRoom = null;
    $('nav').hidden = true;
    $('whoami').hidden = true;
    if (reason !== 'logout') banner('Your session has ended. Please sign in again.', 'info');
    endCallView();
    route();
  });

  /** Empties the sign-in, sign-up and password forms (nothing typed stays behind). */
  function clearAuthForms() {
    for (const id of ['signin-form', 'signup-form', 'forgot-form', 'password-form', 'set-password-form']) {
      const form = $(id);
      form.reset();
      for (const out of form.querySelectorAll('.form-error, .form-note')) out.textContent = '';
    }
    showForgot(false);
  }

  function showForgot(on) {
    $('forgot-form').hidden = !on;
    $('signin-form').hidden = on;
    if (on) $('forgot-form').elements.email.value = $('signin-form').elements.email.value;
  }
  $('forgot-link').addEventListener('click', (e) => { e.preventDefault(); showForgot(true); $('forgot-form').elements.email.focus(); });
  $('forgot-back').addEventListener('click', (e) => { e.preventDefault(); showForgot(false); });

  $('forgot-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const form = e.currentTarget;
    submitting(form, async () => {
      await client.auth.forgotPassword(formData(form).email);
      form.querySelector('.form-note').textContent = 'If an account exists for that address, we have sent it a link to choose a new password.';
    });
  });

  async function signedIn() {
    clearAuthForms();
    state.me = client.user;
    remember(state.me);
    $('me-name').textContent = state.me.display_name;
    $('nav').hidden = false;
    $('nav').querySelector('[data-view=admin]').hidden = !isAdmin();
    $('whoami').hidden = false;
    $('banner').hidden = true;
    route();
    try {
      await client.connect();
      renderConnState();
      refreshRoomsQuietly();
    } catch (err) {
      banner(`Live updates are unavailable: ${describe(err)}`, 'info');
    }
  }

  // ---- realtime status ----------------------------------------------------

  /** The header's connection badge, from the client's state as it is now. */
  function renderConnState() {
    const s = client.state;
    const el = $('conn-state');
    el.className = `conn ${s}`;
    el.textContent = s === 'connected' ? 'live' : s === 'connecting' ? 'reconnecting…' : 'offline';
  }

  client.on('state', ({ state: s }) => {
    renderConnState();
    if (s === 'connected') state.joined.clear();
    // while our own connection is down we know nothing of others' presence
    renderRooms();
    renderPresence();
  });
  client.on('connected', ({ resumed }) => {
    renderConnState();
    // every (re)connection: catch up the open room from what we have (room:sync)
    if (state.currentRoom) joinRoom(state.currentRoom).catch(() => {});
    if (resumed) {
      refreshRoomsQuietly();
      if (state.view === 'requests') loadRequests().catch(() => {});
    }
  });

  // skill requests change live (docs/marketplace.md: the `request` event)
  client.on('request', ({ event, request }) => {
    if (!state.me || !request) return;
    if (event === 'accepted') refreshRoomsQuietly();
    if (state.view === 'requests') loadRequests().catch(() => {});
    const mine = request.learner && request.learner.id === state.me.id;
    if (event === 'created' && !mine) banner(`New request from ${(request.learner && request.learner.display_name) || 'a learner'}: “${(request.listing && request.listing.title) || ''}”.`, 'info');
    if (event === 'accepted' && mine) banner(`${(request.teacher && request.teacher.display_name) || 'The teacher'} accepted your request. A chat is open for you two.`, 'info');
  });
  client.on('error', (err) => {
    if (err && err.code !== 'token_revoked') console.warn('skillshare:', err);
  });

  // ---- browse and listings ------------------------------------------------

  async function loadCategories() {
    let categories = FALLBACK_CATEGORIES.map((id) => ({ id, name: id }));
    try {
      const res = await client.skills.categories();
      if (res && Array.isArray(res.items) && res.items.length) categories = res.items;
    } catch { /* keep the fallback list */ }
    for (const c of categories) categoryNames.set(c.id, c.name);
    for (const select of document.querySelectorAll('.category-select')) {
      const keep = select.querySelector('option[value=""]');
      select.replaceChildren(...(keep ? [keep] : []), ...categories.map((c) => h('option', { value: c.id }, c.name)));
    }
  }

  $('new-listing-toggle').addEventListener('click', () => {
    if (!$('listing-form').hidden && !state.editingListing) closeListingForm();
    else openListingForm(null);
  });
  $('listing-cancel').addEventListener('click', () => closeListingForm());

  /** Opens the listing form empty (a new listing) or holding `listing` (editing it). */
  function openListingForm(listing) {
    const form = $('listing-form');
    form.reset();
    form.querySelector('.form-error').textContent = '';
    state.editingListing = listing;
    $('listing-form-title').textContent = listing ? 'Edit your listing' : 'Offer a skill';
    form.querySelector('button[type=submit]').textContent = listing ? 'Save changes' : 'Publish';
    if (listing) {
      for (const name of ['title', 'description', 'category', 'level', 'mode']) {
        if (listing[name] !== undefined) form.elements[name].value = listing[name];
      }
      form.elements.tags.value = (listing.tags || []).join(', ');
    }
    form.hidden = false;
    form.scrollIntoView({ block: 'start' });
    form.elements.title.focus();
  }

  function closeListingForm() {
    $('listing-form').reset();
    $('listing-form').hidden = true;
    state.editingListing = null;
  }

  $('listing-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const form = e.currentTarget;
    submitting(form, async () => {
      const d = formData(form);
      const tags = (d.tags || '').split(',').map((t) => t.trim()).filter(Boolean);
      const data = { title: d.title, description: d.description || '', category: d.category, tags, level: d.level, mode: d.mode };
      const editing = state.editingListing;
      if (editing) await client.skills.update(editing.id, data);
      else await client.skills.create(data);
      closeListingForm();
      banner(editing ? 'Your listing is updated.' : 'Your listing is published.', 'info');
      await loadBrowse(true);
    });
  });

  async function deleteListing(listing, item) {
    if (!window.confirm(`Delete your listing “${listing.title}”? This cannot be undone.`)) return;
    try {
      await client.skills.remove(listing.id);
      item.remove();
      banner('Your listing is deleted.', 'info');
    } catch (err) {
      banner(`Could not delete the listing: ${describe(err)}`);
    }
  }

  $('search-form').addEventListener('submit', (e) => {
    e.preventDefault();
    loadBrowse(true);
  });
  $('listings-more').addEventListener('click', () => loadBrowse(false));

  let browseGeneration = 0;
  async function loadBrowse(reset) {
    const list = $('listings');
    clearError($('browse-error'));
    if (reset) state.listingsCursor = null;
    const generation = ++browseGeneration;
    list.setAttribute('aria-busy', 'true');
    const q = formData($('search-form'));
    try {
      const page = await client.skills.list({ q: q.q, category: q.category, limit: 20, cursor: state.listingsCursor });
      if (generation !== browseGeneration) return; // a newer search or reload won
      if (reset) list.replaceChildren();
      for (const listing of page.items) list.append(renderListing(listing));
      state.listingsCursor = page.next_cursor;
      $('listings-more').hidden = !page.next_cursor;
      if (reset && page.items.length === 0) {
        const searching = Boolean((q.q || '').trim() || q.category);
        list.append(h('li', { class: 'muted empty' }, searching
          ? 'No results. Try other words or all categories.'
          : 'No listings yet. Be the first to offer a skill!'));
      }
    } catch (err) {
      if (generation === browseGeneration) showError($('browse-error'), `Could not load listings. ${describe(err)}`);
    } finally {
      if (generation === browseGeneration) list.setAttribute('aria-busy', 'false');
    }
  }

  function ratingText(rating) {
    return rating && rating.count ? `★ ${Number(rating.average).toFixed(1)} (${rating.count})` : 'No reviews yet';
  }

  function renderListing(listing) {
    const owner = listing.owner || {};
    remember(owner);
    const mine = state.me && owner.id === state.me.id;
    const box = h('div', { class: 'request-box', hidden: true },
      h('input', { placeholder: 'Say hello and what you want to learn', 'aria-label': 'Message to the teacher', maxlength: 1000 }),
      h('button', { type: 'button', onclick: (e) => sendRequest(listing, e.currentTarget) }, 'Send'));
    const ownerLink = owner.id
      ? h('a', { href: `#/users/${encodeURIComponent(owner.id)}` }, owner.display_name || 'someone')
      : (owner.display_name || 'someone');
    const facts = [categoryNames.get(listing.category) || labelOf({}, listing.category),
      labelOf(LEVEL_LABELS, listing.level), labelOf(MODE_LABELS, listing.mode), ratingText(listing.rating)].filter(Boolean);
    const item = h('li', { dataset: { listingId: listing.id } },
      h('h3', {}, listing.title),
      h('div', { class: 'meta' }, 'by ', ownerLink, ` · ${facts.join(' · ')}`,
        listing.status === 'hidden' ? h('span', { class: 'status declined' }, ' hidden') : null),
      listing.description ? h('p', { class: 'desc' }, listing.description) : null,
      h('div', {}, (listing.tags || []).map((t) => h('span', { class: 'tag' }, t))),
      h('div', { class: 'actions' },
        mine
          ? [h('span', { class: 'muted' }, 'Your listing'),
            h('button', { type: 'button', class: 'secondary', onclick: () => openListingForm(listing) }, 'Edit'),
            h('button', { type: 'button', class: 'secondary', onclick: () => deleteListing(listing, item) }, 'Delete')]
          : h('button', { type: 'button', class: 'secondary request-toggle', onclick: () => { box.hidden = !box.hidden; if (!box.hidden) box.querySelector('input').focus(); } }, 'Request to learn'),
        isAdmin() ? moderationButton(listing) : null),
      box);
    return item;
  }

  function isAdmin() {
    return Boolean(state.me && state.me.role === 'admin');
  }

  /** Admins: hide a listing from everyone (or show it again). */
  function moderationButton(listing) {
    const hidden = listing.status === 'hidden';
    return h('button', {
      type: 'button', class: 'secondary',
      onclick: async (e) => {
        const button = e.currentTarget;
        button.disabled = true;
        try {
          const updated = hidden ? await client.admin.unhideListing(listing.id) : await client.admin.hideListing(listing.id);
          button.closest('li').replaceWith(renderListing({ ...listing, ...updated }));
          banner(hidden ? 'The listing is visible again.' : 'The listing is hidden.', 'info');
        } catch (err) {
          banner(describe(err));
          button.disabled = false;
        }
      },
    }, hidden ? 'Unhide' : 'Hide');
  }

  // ---- admin: moderation and the audit log (docs/marketplace.md) --------------

  $('admin-find').addEventListener('submit', (e) => {
    e.preventDefault();
    const form = e.currentTarget;
    clearError($('admin-find-error'));
    submitting(form, async () => {
      try {
        const res = await client.admin.findUser(formData(form).email.trim());
        const user = res.items[0];
        if (!user) {
          $('admin-user').hidden = true;
          showError($('admin-find-error'), 'No account has this address.');
          return;
        }
        renderAdminUser(user);
      } catch (err) {
        showError($('admin-find-error'), describe(err));
      }
    });
  });

  function renderAdminUser(user) {
    const box = $('admin-user');
    const act = (label, fn, cls) => h('button', {
      type: 'button', class: cls || 'secondary',
      onclick: async (e) => {
        const button = e.currentTarget;
        button.disabled = true;
        try {
          const updated = await fn();
          if (updated) renderAdminUser({ ...user, ...updated });
          loadAudit(true);
        } catch (err) {
          banner(describe(err));
          button.disabled = false;
        }
      },
    }, label);
    const self = state.me && user.id === state.me.id;
    box.replaceChildren(
      h('strong', {}, user.display_name), h('span', { class: 'muted' }, user.email || ''),
      h('span', { class: `status ${user.status === 'banned' ? 'declined' : ''}` }, user.status),
      h('span', { class: 'status' }, user.role),
      self ? null : user.status === 'banned'
        ? act('Unban', () => client.admin.unban(user.id))
        : act('Ban', () => (window.confirm(`Ban ${user.display_name}? Their sessions end at once.`) ? client.admin.ban(user.id) : null), 'danger'),
      self ? null : user.role === 'admin'
        ? act('Remove admin', () => client.admin.setRole(user.id, 'user'))
        : act('Make admin', () => client.admin.setRole(user.id, 'admin')),
      h('a', { href: `#/users/${encodeURIComponent(user.id)}` }, 'Public profile'));
    box.hidden = false;
  }

  $('admin-audit-refresh').addEventListener('click', () => loadAudit(true));
  $('admin-audit-more').addEventListener('click', () => loadAudit(false));

  async function loadAudit(reset) {
    if (!isAdmin()) return;
    clearError($('admin-audit-error'));
    const ul = $('admin-audit');
    if (reset) state.auditCursor = null;
    try {
      const page = await client.admin.audit({ limit: 50, cursor: state.auditCursor });
      const items = page.items.map((a) => h('li', {},
        h('div', { class: 'row between' }, h('code', {}, a.action), h('span', { class: 'meta' }, new Date(a.at).toLocaleString())),
        h('div', { class: 'meta' }, [a.actor_id ? `by ${state.names.get(a.actor_id) || a.actor_id}` : 'by the command line',
          a.target ? `on ${a.target}` : '', a.ip ? `from ${a.ip}` : '', a.request_id ? `request ${a.request_id}` : ''].filter(Boolean).join(' · ')),
        a.details && Object.keys(a.details).length ? h('div', { class: 'small' }, Object.entries(a.details).map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`).join(' · ')) : null));
      if (reset) ul.replaceChildren(...items);
      else ul.append(...items);
      if (reset && !items.length) ul.append(h('li', { class: 'muted' }, 'Nothing yet.'));
      state.auditCursor = page.next_cursor;
      $('admin-audit-more').hidden = !page.next_cursor;
    } catch (err) {
      showError($('admin-audit-error'), `Could not load the audit log. ${describe(err)}`);
    }
  }

  // ---- public profiles --------------------------------------------------------

  async function loadUser(userId) {
    clearError($('user-error'));
    for (const id of ['user-name', 'user-bio', 'user-rating', 'user-timezone', 'user-languages', 'user-skills']) $(id).textContent = '';
    $('user-listings').replaceChildren();
    $('user-reviews').replaceChildren();
    if (!userId) return;
    try {
      const [user, listings] = await Promise.all([
        client.users.get(userId), client.skills.list({ owner: userId, limit: 50, sort: 'newest' })]);
      remember(user);
      $('user-name').textContent = user.display_name;
      $('user-bio').textContent = user.bio || 'No bio yet.';
      $('user-timezone').textContent = user.timezone || 'UTC';
      $('user-languages').textContent = (user.languages || []).join(', ') || '—';
      $('user-skills').textContent = (user.skills_offered || []).map((sk) => `${sk.name} (${labelOf(LEVEL_LABELS, sk.level)})`).join(', ') || '—';
      let count = 0;
      let sum = 0;
      for (const l of listings.items) {
        if (l.rating && l.rating.count) { count += l.rating.count; sum += l.rating.average * l.rating.count; }
      }
      $('user-rating').textContent = count ? `★ ${(sum / count).toFixed(1)} from ${count} review${count === 1 ? '' : 's'}` : 'No reviews yet';
      $('user-listings').replaceChildren(...listings.items.map(renderListing));
      if (!listings.items.length) $('user-listings').append(h('li', { class: 'muted' }, 'No listings.'));
      const reviewed = listings.items.filter((l) => l.rating && l.rating.count);
      const pages = await Promise.all(reviewed.map((l) => client.skills.reviews(l.id, { limit: 10 }).then((p) => p.items.map((r) => ({ ...r, listing: l })))));
      const reviews = pages.flat().sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)));
      $('user-reviews').replaceChildren(...reviews.map((r) => h('li', {},
        h('div', { class: 'row between' }, h('strong', {}, '★'.repeat(r.rating) + '☆'.repeat(5 - r.rating)),
          h('span', { class: 'meta' }, `${(r.reviewer && r.reviewer.display_name) || 'A learner'} · ${r.listing.title}`)),
        r.comment ? h('p', {}, r.comment) : null)));
      if (!reviews.length) $('user-reviews').append(h('li', { class: 'muted' }, 'No reviews yet.'));
    } catch (err) {
      showError($('user-error'), `Could not load this profile. ${describe(err)}`);
    }
  }

  async function sendRequest(listing, button) {
    const input = button.previousElementSibling;
    button.disabled = true;
    try {
      await client.skills.request(listing.id, input.value.trim());
      button.parentElement.replaceWith(h('p', { class: 'muted' }, 'Request sent. You will find it under Requests.'));
    } catch (err) {
      banner(`Could not send the request: ${describe(err)}`);
      button.disabled = false;
    }
  }

  // ---- requests -------------------------------------------------------------

  async function loadRequests(highlightId) {
    clearError($('requests-error'));
    try {
      await fetchRooms();
    } catch { /* the completion hint then waits for the chat */ }
    for (const role of ['incoming', 'outgoing']) {
      const ul = $(`requests-${role}`);
      try {
        const page = await client.requests.list({ role, limit: 50 });
        ul.replaceChildren(...page.items.map((r) => renderRequest(r, role)));
        const wanted = highlightId && ul.querySelector(`li[data-request-id="${CSS.escape(highlightId)}"]`);
        if (wanted) {
          wanted.classList.add('highlight');
          wanted.scrollIntoView({ block: 'center' });
        }
        if (!page.items.length) ul.append(h('li', { class: 'muted' }, role === 'incoming' ? 'Nobody has asked yet.' : 'You have not asked anyone yet.'));
      } catch (err) {
        ul.replaceChildren();
        showError($('requests-error'), `Could not load requests. ${describe(err)}`);
      }
    }
  }

  function renderRequest(r, role) {
    const other = role === 'incoming' ? r.learner : r.teacher;
    remember(other);
    const act = (label, fn, cls) => h('button', {
      type: 'button', class: cls,
      onclick: async (e) => {
        e.currentTarget.disabled = true;
        try {
          const res = await fn();
          if (res && res.room_id && label === 'Accept') location.hash = `#/chat/${encodeURIComponent(res.room_id)}`;
          else await loadRequests();
        } catch (err) {
          banner(describe(err));
          e.currentTarget.disabled = false;
        }
      },
    }, label);
    const actions = [];
    if (r.status === 'pending' && role === 'incoming') {
      actions.push(act('Accept', () => client.requests.accept(r.id)), act('Decline', () => client.requests.decline(r.id), 'secondary'));
    }
    if (r.status === 'pending' && role === 'outgoing') actions.push(act('Cancel', () => client.requests.cancel(r.id), 'secondary'));
    if (r.status === 'accepted') {
      if (r.room_id) actions.push(h('a', { href: `#/chat/${encodeURIComponent(r.room_id)}` }, 'Open chat'));
      if (talkedSince(r)) actions.push(act('Mark completed', () => client.requests.complete(r.id), 'secondary'));
      else actions.push(h('span', { class: 'muted small' }, 'You can mark it completed after your first conversation in chat.'));
    }
    if (r.status === 'completed' && role === 'outgoing') {
      if (r.reviewed) actions.push(h('span', { class: 'muted small' }, 'You reviewed this.'));
      else actions.push(h('button', { type: 'button', class: 'secondary', onclick: (e) => openReview(r, e.currentTarget) }, 'Write a review'));
    }
    return h('li', { dataset: { requestId: r.id } },
      h('div', { class: 'row between' },
        h('strong', {}, (r.listing && r.listing.title) || 'Listing'),
        h('span', { class: `status ${r.status}` }, labelOf(STATUS_LABELS, r.status))),
      h('div', { class: 'meta' }, `${role === 'incoming' ? 'from' : 'to'} ${(other && other.display_name) || 'someone'} · ${new Date(r.created_at).toLocaleDateString()}`),
      r.message ? h('p', {}, r.message) : null,
      h('div', { class: 'actions' }, actions));
  }

  /** Whether the two have exchanged a message since the request was accepted
   * (the server completes a request only then: docs/marketplace.md). */
  function talkedSince(r) {
    const room = r.room_id && state.rooms.get(r.room_id);
    const last = room && room.last_message;
    return Boolean(last && String(last.created_at) >= String(r.accepted_at || r.updated_at));
  }

  /** The learner's review: 1–5 stars and a comment, then a confirmation. */
  function openReview(r, button) {
    const name = `rating-${r.id}`;
    const form = h('form', { class: 'review-form' },
      h('fieldset', { class: 'stars' }, h('legend', {}, 'Your rating'),
        [1, 2, 3, 4, 5].map((n) => h('label', {}, h('input', { type: 'radio', name, value: n, required: true }), `${n} star${n === 1 ? '' : 's'}`))),
      h('label', {}, 'Comment', h('textarea', { name: 'comment', rows: 3, maxlength: 2000 })),
      h('div', { class: 'row' }, h('button', { type: 'submit' }, 'Publish review'),
        h('button', { type: 'button', class: 'secondary', onclick: () => form.replaceWith(button) }, 'Cancel')),
      h('p', { class: 'form-error', role: 'status' }));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      submitting(form, async () => {
        const rating = Number(new FormData(form).get(name));
        await client.requests.review(r.id, { rating, comment: form.elements.comment.value.trim() });
        form.replaceWith(h('p', { class: 'form-note', role: 'status' }, 'Thanks! Your review is published.'));
      });
    });
    button.replaceWith(form);
    form.querySelector('input').focus();
  }

  // ---- matches --------------------------------------------------------------

  async function loadMatches() {
    clearError($('matches-error'));
    const ul = $('matches');
    try {
      const page = await client.matches.list({ limit: 50 });
      ul.replaceChildren(...page.items.map((m) => {
        remember(m.user);
        return h('li', {},
          h('div', { class: 'row between' }, h('strong', {}, m.user.display_name), h('span', { class: 'status' }, `score ${m.score}`)),
          h('p', {}, m.reason || ''),
          h('div', { class: 'actions' }, h('button', { type: 'button', class: 'secondary', onclick: () => messageUser(m.user.id) }, 'Message')));
      }));
      if (!page.items.length) ul.append(h('li', { class: 'muted' }, 'No matches yet. Add skills you offer and want to your profile.'));
    } catch (err) {
      ul.replaceChildren();
      showError($('matches-error'), `Could not load matches. ${describe(err)}`);
    }
  }

  async function messageUser(userId) {
    try {
      const room = await client.rooms.direct(userId);
      location.hash = `#/chat/${encodeURIComponent(room.id)}`;
    } catch (err) {
      banner(`Could not open a conversation: ${describe(err)}`);
    }
  }

  // ---- chat -----------------------------------------------------------------

  function memberIds(room) {
    const raw = room.members || room.member_ids || [];
    return raw.map((m) => (typeof m === 'string' ? m : m.id || m.user_id)).filter(Boolean);
  }

  function otherMember(room) {
    return memberIds(room).find((id) => state.me && id !== state.me.id) || null;
  }

  function roomTitle(room) {
    if (room.name) return room.name;
    const other = otherMember(room);
    for (const m of room.members || []) if (m && typeof m === 'object') remember({ id: m.id || m.user_id, display_name: m.display_name });
    return (other && state.names.get(other)) || 'Conversation';
  }

  function unreadOf(room) {
    return Number(room.unread_count ?? room.unread ?? 0) || 0;
  }

  async function fetchRooms() {
    const page = await client.rooms.list({ limit: 100 });
    for (const room of page.items) {
      // a list computed before our latest read mark reached the server must not bring old counts back
      const last = room.last_message ? room.last_message.seq : room.last_seq;
      if (last && last <= readUpTo(room.id)) room.unread_count = 0;
      state.rooms.set(room.id, room);
    }
    await Promise.all(page.items.map((r) => { const o = otherMember(r); return o && !r.name ? nameOf(o) : null; }));
    const others = page.items.map(otherMember).filter(Boolean);
    if (others.length && client.state === 'connected') client.presence.subscribe(others).then(() => {
      // the answer carries statuses no event will repeat (someone already online)
      renderRooms();
      renderPresence();
    }, () => {});
    return page.items;
  }

  function refreshRoomsQuietly() {
    fetchRooms().then(renderRooms, () => {});
  }

  function renderRooms() {
    const ul = $('rooms');
    const rooms = [...state.rooms.values()].sort((a, b) => String(lastAt(b)).localeCompare(String(lastAt(a))));
    ul.replaceChildren(...rooms.map((room) => {
      const other = otherMember(room);
      const unread = unreadOf(room);
      const last = room.last_message;
      const status = other ? shownStatus(other) : '';
      return h('li', { class: room.id === state.currentRoom ? 'active' : '', dataset: { roomId: room.id } },
        h('a', {
          class: 'room-link', href: `#/chat/${encodeURIComponent(room.id)}`,
          'aria-current': room.id === state.currentRoom ? 'page' : null,
        },
        h('span', { class: `dot ${status}`, title: status || null, 'aria-hidden': 'true' }),
        h('span', { class: 'name' }, roomTitle(room), h('span', { class: 'last' }, last ? (last.deleted ? 'Message from a deleted account' : last.body) : 'No messages yet')),
        unread ? h('span', { class: 'badge unread', 'aria-label': `${unread} unread` }, unread) : null));
    }));
    const total = rooms.reduce((n, r) => n + unreadOf(r), 0);
    $('nav-unread').textContent = String(total);
    $('nav-unread').hidden = total === 0;
  }

  function lastAt(room) {
    return (room.last_message && room.last_message.created_at) || room.updated_at || room.created_at || '';
  }

  async function loadChat(roomId) {
    clearError($('rooms-error'));
    try {
      await fetchRooms();
    } catch (err) {
      showError($('rooms-error'), `Could not load conversations. ${describe(err)}`);
    }
    if (roomId && !state.rooms.has(roomId)) state.rooms.set(roomId, { id: roomId, members: [] });
    if (state.currentRoom !== (roomId || null)) {
      leaveConversation();
      if (roomId) restoreDraft(roomId);
    }
    state.currentRoom = roomId || null;
    renderRooms();
    $('view-chat').classList.toggle('has-room', Boolean(roomId));
    $('chat-empty').hidden = Boolean(roomId);
    $('chat-room').hidden = !roomId;
    if (!roomId) return;
    const room = state.rooms.get(roomId);
    $('chat-title').textContent = roomTitle(room);
    renderPresence();
    $('typing').textContent = '';
    renderMessages();
    try {
      await joinRoom(roomId);
    } catch (err) {
      banner(`Live chat is unavailable: ${describe(err)}`, 'info');
    }
    try {
      const page = await client.rooms.messages(roomId, { limit: HISTORY_PAGE });
      for (const m of page.items) addMessage(m);
      state.historyLoaded.add(roomId);
      renderMessages();
    } catch (err) {
      banner(`Could not load the message history: ${describe(err)}`);
    }
  }

  /** Joins the room, catching up (room:sync) from the newest message we have. */
  async function joinRoom(roomId) {
    if (client.state !== 'connected' || state.joined.has(roomId)) return;
    const known = newestSeq(roomId);
    await client.chat.join(roomId, known === null ? {} : { afterSeq: known });
    state.joined.add(roomId);
  }

  /** The newest seq we hold for a room (0 once its history loaded empty), or null before we know. */
  function newestSeq(roomId) {
    const seqs = [...roomMessages(roomId).keys()];
    if (seqs.length) return Math.max(...seqs);
    return state.historyLoaded.has(roomId) ? 0 : null;
  }

  /** Leaving the chat view: no room is on screen any more. */
  function leaveConversation() {
    if (!state.currentRoom) return;
    saveDraft();
    state.currentRoom = null;
    readObserver.disconnect();
  }

  function roomMessages(roomId) {
    if (!state.messages.has(roomId)) state.messages.set(roomId, new Map());
    return state.messages.get(roomId);
  }

  function addMessage(m) {
    roomMessages(m.room_id).set(m.seq, m);
    const pending = state.pending.get(m.room_id);
    if (pending) pending.delete(m.client_id);
  }

  function renderMessages() {
    const roomId = state.currentRoom;
    if (!roomId) return;
    const ol = $('messages');
    const atBottom = ol.scrollHeight - ol.scrollTop - ol.clientHeight < 40;
    const msgs = [...roomMessages(roomId).values()].sort((a, b) => a.seq - b.seq);
    const items = msgs.map((m) => h('li', { class: m.deleted ? 'muted' : (m.sender_id === state.me.id ? 'mine' : ''), dataset: { seq: m.seq } },
      m.deleted ? 'Message from a deleted account' : m.body, h('span', { class: 'time' }, timeOf(m.created_at))));
    for (const [clientId, p] of state.pending.get(roomId) || []) {
      items.push(h('li', { class: 'mine pending', dataset: { clientId } }, p.body, h('span', { class: 'time' }, 'sending…')));
    }
    readObserver.disconnect();
    onScreen.clear();
    ol.replaceChildren(...items);
    if (atBottom || items.length) ol.scrollTop = ol.scrollHeight;
    for (const li of ol.querySelectorAll('li[data-seq]')) readObserver.observe(li);
  }

  // Read marks: only messages on screen (IntersectionObserver on the list)
  // while the tab is visible (document.visibilityState) count as read.
  const onScreen = new Set(); // seqs of the open room's messages now visible in the list
  const readObserver = new IntersectionObserver((entries) => {
    for (const e of entries) {
      const seq = Number(e.target.dataset.seq);
      if (e.isIntersecting) onScreen.add(seq);
      else onScreen.delete(seq);
    }
    markRead();
  }, { root: $('messages'), threshold: 0.5 });
  document.addEventListener('visibilitychange', () => markRead());

  let readTimer = null;
  const readSent = new Map(); // room id -> highest seq marked read

  /** The newest seq of a room we have read (sent, or on screen in the visible tab now). */
  function readUpTo(roomId) {
    let seq = readSent.get(roomId) || 0;
    if (roomId === state.currentRoom && document.visibilityState === 'visible' && onScreen.size) seq = Math.max(seq, ...onScreen);
    return seq;
  }
  function markRead() {
    const roomId = state.currentRoom;
    if (!roomId || document.visibilityState !== 'visible' || !onScreen.size) return;
    const seq = Math.max(...onScreen);
    const room = state.rooms.get(roomId);
    const newest = Math.max(0, ...roomMessages(roomId).keys());
    if (room && unreadOf(room) && seq >= newest) {
      room.unread_count = 0;
      room.unread = 0;
      renderRooms();
    }
    if (client.state !== 'connected' || seq <= (readSent.get(roomId) || 0)) return;
    clearTimeout(readTimer);
    readTimer = setTimeout(() => {
      readSent.set(roomId, Math.max(seq, readSent.get(roomId) || 0));
      client.chat.read(roomId, seq).catch(() => readSent.delete(roomId));
    }, 300);
  }

  let requestsRefresh = null;
  client.on('message', (m) => {
    addMessage(m);
    if (state.view === 'requests') { // "Mark completed" may become possible
      clearTimeout(requestsRefresh);
      requestsRefresh = setTimeout(() => loadRequests().catch(() => {}), 300);
    }
    const room = state.rooms.get(m.room_id);
    if (room) {
      room.last_message = m;
      const seen = m.room_id === state.currentRoom && document.visibilityState === 'visible';
      if (!seen && m.sender_id !== (state.me && state.me.id)) {
        room.unread_count = unreadOf(room) + 1;
        room.unread = room.unread_count;
      }
    } else {
      refreshRoomsQuietly();
    }
    if (m.room_id === state.currentRoom) {
      showTyping(m.sender_id, false);
      renderMessages();
    }
    renderRooms();
  });

  // Drafts: kept per user and room in localStorage, so a reload keeps them.
  const draftKey = (roomId) => `skillshare:draft:${state.me && state.me.id}:${roomId}`;
  function saveDraft() {
    if (!state.currentRoom || !state.me) return;
    const text = $('composer').elements.body.value;
    try {
      if (text) localStorage.setItem(draftKey(state.currentRoom), text);
      else localStorage.removeItem(draftKey(state.currentRoom));
    } catch { /* storage full or disabled: drafts are a convenience */ }
  }
  function restoreDraft(roomId) {
    let text = '';
    try { text = localStorage.getItem(draftKey(roomId)) || ''; } catch { /* see saveDraft */ }
    $('composer').elements.body.value = text;
  }

  $('composer').addEventListener('submit', (e) => {
    e.preventDefault();
    const input = e.currentTarget.elements.body;
    const body = input.value.trim();
    const roomId = state.currentRoom;
    if (!body || !roomId) return;
    input.value = '';
    saveDraft();
    sendTyping(false);
    const clientId = crypto.randomUUID();
    if (!state.pending.has(roomId)) state.pending.set(roomId, new Map());
    state.pending.get(roomId).set(clientId, { body });
    renderMessages();
    client.chat.send(roomId, body, { clientId }).then(
      (m) => { addMessage(m); if (roomId === state.currentRoom) renderMessages(); },
      (err) => {
        state.pending.get(roomId).delete(clientId);
        renderMessages();
        banner(`Message not sent: ${describe(err)}`);
        if (!input.value) input.value = body;
      },
    );
  });

  // typing: tell others while the user types, stop after a pause
  let typingSent = false;
  let typingIdle = null;
  $('composer').elements.body.addEventListener('input', () => {
    saveDraft();
    if (!typingSent) sendTyping(true);
    clearTimeout(typingIdle);
    typingIdle = setTimeout(() => sendTyping(false), TYPING_IDLE_MS);
  });

  function sendTyping(on) {
    if (!state.currentRoom || client.state !== 'connected' || typingSent === on) return;
    typingSent = on;
    client.chat.typing(state.currentRoom, on).catch(() => {});
  }

  client.on('typing', (t) => {
    if (t.room_id === state.currentRoom && t.user_id !== state.me.id) showTyping(t.user_id, t.typing);
  });

  function showTyping(userId, on) {
    clearTimeout(state.typingTimers.get(userId));
    if (on) {
      nameOf(userId).then((name) => { $('typing').textContent = `${name} is typing…`; });
      state.typingTimers.set(userId, setTimeout(() => showTyping(userId, false), TYPING_SHOWN_MS));
    } else {
      $('typing').textContent = '';
    }
  }

  client.on('presence', () => {
    renderRooms();
    renderPresence();
  });

  function renderPresence() {
    const room = state.currentRoom && state.rooms.get(state.currentRoom);
    const other = room && otherMember(room);
    $('chat-presence').textContent = other ? shownStatus(other) : '';
    $('call-start').disabled = !other || client.state !== 'connected';
  }

  /** A user's status, or '' when the server does not show it to us (not a contact). */
  function shownStatus(userId) {
    if (client.state !== 'connected') return 'unknown'; // our own connection is down: we cannot tell
    return client.presence.hidden.has(userId) ? '' : client.presence.statusOf(userId);
  }

  // ---- calls ------------------------------------------------------------------

  async function getMedia() {
    try {
      return await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
    } catch {
      try {
        return await navigator.mediaDevices.getUserMedia({ video: true });
      } catch (err) {
        banner(`No camera available (${describe(err)}); joining without video.`, 'info');
        return null;
      }
    }
  }

  function showCallView(status) {
    $('call-view').hidden = false;
    $('call-status').textContent = status;
    $('local-video').srcObject = state.localStream;
  }

  function endCallView(message) {
    $('call-view').hidden = true;
    $('incoming-call').hidden = true;
    $('remote-video').srcObject = null;
    $('local-video').srcObject = null;
    if (state.localStream) for (const t of state.localStream.getTracks()) t.stop();
    state.localStream = null;
    state.call = null;
    if (message) banner(message, 'info');
  }

  function wireCall(call) {
    state.call = call;
    window.skillshareApp.call = call;
    call.on('remotestream', (stream) => {
      const video = $('remote-video');
      if (video.srcObject !== stream) video.srcObject = stream;
      video.play().catch(() => {});
    });
    call.on('state', ({ state: s }) => {
      const text = { ringing: 'Calling…', connecting: 'Connecting…', connected: 'Connected', reconnecting: 'Reconnecting…', ended: 'Call ended' }[s];
      if (text) $('call-status').textContent = text;
    });
    // the other side lost its connection to the server and may come back (docs/calls.md)
    call.on('peer', ({ state: p }) => {
      if (call.state === 'ended') return;
      $('call-status').textContent = p === 'reconnecting' ? 'The other person is reconnecting…'
        : call.state === 'reconnecting' ? 'Reconnecting…' : 'Connected';
    });
    call.on('connected', ({ path }) => {
      $('call-status').textContent = path === 'relay' ? 'Connected (via server relay)' : 'Connected';
    });
    call.on('ended', ({ reason }) => {
      endCallView({ rejected: 'The call was declined.', declined: 'The call was declined.', missed: 'No answer.', busy: 'They are in another call.' }[reason] || 'The call has ended.');
    });
  }

  $('call-start').addEventListener('click', async () => {
    const room = state.rooms.get(state.currentRoom);
    const other = room && otherMember(room);
    if (!other || state.call) return;
    state.localStream = await getMedia();
    showCallView('Calling…');
    try {
      const call = await client.calls.invite(other, { localStream: state.localStream, media: { audio: true, video: true } });
      wireCall(call);
    } catch (err) {
      endCallView();
      banner(`Could not start the call: ${describe(err)}`);
    }
  });

  $('call-hangup').addEventListener('click', () => {
    if (state.call) state.call.end().catch(() => {});
    endCallView();
  });

  client.on('call', async (call) => {
    if (state.call) {
      call.reject('busy').catch(() => {});
      return;
    }
    state.call = call;
    $('incoming-text').textContent = `${await nameOf(call.peerId)} is calling you`;
    $('incoming-call').hidden = false;
    call.on('ended', () => { if (state.call === call && $('call-view').hidden) endCallView('Missed call.'); });
  });

  $('incoming-accept').addEventListener('click', async () => {
    const call = state.call;
    if (!call) return;
    $('incoming-call').hidden = true;
    state.localStream = await getMedia();
    showCallView('Connecting…');
    wireCall(call);
    try {
      await call.accept({ localStream: state.localStream });
    } catch (err) {
      endCallView();
      banner(`Could not join the call: ${describe(err)}`);
    }
  });

  $('incoming-reject').addEventListener('click', () => {
    const call = state.call;
    $('incoming-call').hidden = true;
    state.call = null;
    if (call) call.reject('declined').catch(() => {});
  });

  // ---- profile ----------------------------------------------------------------

  // ---- sign-in providers (docs/accounts.md) ---------------------------------

  async function loadProviders() {
    try {
      const res = await client.auth.providers();
      state.providers = (res && res.items) || [];
    } catch (err) {
      state.providers = [];
    }
    const box = $('provider-buttons');
    box.replaceChildren(...state.providers.map((p) => h('a', {
      class: 'button secondary', href: client.auth.providerSignInUrl(p.name),
    }, `Continue with ${p.display_name}`)));
    box.hidden = state.providers.length === 0;
  }

  function renderSignInMethods(me) {
    const linked = new Map((me.identities || []).map((i) => [i.provider, i]));
    const providers = state.providers || [];
    $('sign-in-methods').hidden = providers.length === 0 && linked.size === 0 && me.has_password !== false;
    $('set-password-form').hidden = me.has_password !== false;
    const names = new Map(providers.map((p) => [p.name, p.display_name]));
    for (const [name, i] of linked) if (!names.has(name)) names.set(name, i.display_name);
    $('linked-providers').replaceChildren(...[...names].map(([name, label]) => {
      const identity = linked.get(name);
      const action = identity
        ? h('button', { type: 'button', class: 'link', onclick: () => unlinkProvider(name) }, 'Unlink')
        : h('button', { type: 'button', class: 'link', onclick: () => linkProvider(name) }, 'Link');
      return h('li', {}, `${label}${identity ? ` · linked${identity.email ? ` (${identity.email})` : ''}` : ''} `, action);
    }));
  }

  async function linkProvider(name) {
    try {
      const { authorization_url: url } = await client.auth.linkProvider(name);
      location.assign(url);
    } catch (err) {
      banner(describe(err));
    }
  }

  async function unlinkProvider(name) {
    try {
      await client.auth.unlinkProvider(name);
      banner('Unlinked.', 'info');
      await loadProfile();
    } catch (err) {
      banner(describe(err));
    }
  }

  $('set-password-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const form = e.currentTarget;
    submitting(form, async () => {
      await client.auth.setPassword(formData(form).new_password);
      form.reset();
      banner('Password set. You can now also sign in with your email and password.', 'info');
      await loadProfile();
    });
  });

  async function loadProfile() {
    const form = $('profile-form');
    try {
      const me = await client.users.me();
      state.me = { ...state.me, ...me };
      renderSignInMethods(me);
      renderAccount(me);
      form.elements.display_name.value = me.display_name || '';
      form.elements.timezone.value = me.timezone || '';
      form.elements.bio.value = me.bio || '';
      form.elements.languages.value = (me.languages || []).join(', ');
      state.skills.offered = (me.skills_offered || []).slice();
      state.skills.wanted = (me.skills_wanted || []).slice();
      renderSkills();
    } catch (err) {
      form.querySelector('.form-error').textContent = `Could not load your profile. ${describe(err)}`;
    }
  }

  function renderAccount(me) {
    $('verification').hidden = false;
    $('verification-text').textContent = me.email_verified
      ? `${me.email} is verified.` : `${me.email} is not verified yet. Check your mail for the link.`;
    $('resend-verification').hidden = Boolean(me.email_verified);
    $('password-form').hidden = me.has_password === false;
  }

  $('resend-verification').addEventListener('click', async (e) => {
    const button = e.currentTarget;
    button.disabled = true;
    try {
      await client.auth.resendVerification();
      banner('Verification mail sent. Open the link in it to confirm your address.', 'info');
    } catch (err) {
      banner(describe(err));
    } finally {
      button.disabled = false;
    }
  });

  $('password-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const form = e.currentTarget;
    submitting(form, async () => {
      const d = formData(form);
      await client.auth.changePassword(d.current_password, d.new_password);
      form.reset();
      banner('Password changed.', 'info');
    });
  });

  function renderSkills() {
    for (const kind of ['offered', 'wanted']) {
      $(`skills-${kind}`).replaceChildren(...state.skills[kind].map((s, i) => h('li', {},
        `${s.name} · ${s.level} `,
        h('button', { type: 'button', class: 'link', 'aria-label': `Remove ${s.name}`, onclick: () => { state.skills[kind].splice(i, 1); renderSkills(); } }, '×'))));
    }
  }

  for (const kind of ['offered', 'wanted']) {
    $(`${kind}-add`).addEventListener('click', () => {
      const name = $(`${kind}-name`).value.trim();
      if (!name) return;
      state.skills[kind].push({ name, level: $(`${kind}-level`).value });
      $(`${kind}-name`).value = '';
      renderSkills();
    });
  }

  $('profile-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const form = e.currentTarget;
    submitting(form, async () => {
      const d = formData(form);
      const me = await client.users.updateMe({
        display_name: d.display_name,
        bio: d.bio,
        timezone: d.timezone || 'UTC',
        languages: (d.languages || '').split(',').map((s) => s.trim()).filter(Boolean),
        skills_offered: state.skills.offered,
        skills_wanted: state.skills.wanted,
      });
      state.me = { ...state.me, ...me };
      remember(me);
      $('me-name').textContent = me.display_name;
      banner('Profile saved.', 'info');
    });
  });

  // ---- start ------------------------------------------------------------------

  /** Pages opened from mailed links (/requests/<id>) become the app's own routes. */
  function adoptPath() {
    const path = location.pathname.replace(/\/+$/, '');
    if (!path || location.hash) return;
    const view = path.split('/')[1];
    if (LOADERS[view]) history.replaceState(null, '', `/#${path}`);
  }

  async function start() {
    adoptPath();
    loadCategories();
    loadProviders();
    try {
      const user = await client.auth.resume();
      if (user) {
        await signedIn();
        return;
      }
    } catch (err) {
      banner(`Could not restore your session: ${describe(err)}`);
    }
    route();
  }

  start();
}());
