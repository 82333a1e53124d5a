// The web client in a real browser (Debian chromium, headless, through playwright-core)
// against two real starling nodes on loopback, A and B (B bootstraps from A):
//   - following by npub in B's page works (B's node then holds the follow list);
//   - a post made in A's page appears live on B's home timeline, without a reload;
//   - B's reply (made in B's page) and reaction appear in A's notifications, and so do
//     B's repost and quote (the quote shows A's note inside it on B's timeline);
//   - A's profile edits show on B's page;
//   - a private message written in A's Messages page is read in B's, and B's answer in A's;
//   - unfollowing in B's page empties B's follow list on B's node.
// Every page is screenshotted into target/screenshots/ (listed at the end).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { eventually, finds, launchBrowser, openPage, screenshot, startNode, SCREENSHOT_DIR } from '../lib/harness.js'

const WAIT = 30_000

// Navigates inside the page (a hash change: no reload).
async function go (page, hash) {
  await page.evaluate(h => { location.hash = h }, hash)
}

async function noReload (page, marker) {
  assert.equal(await page.evaluate(() => window.__starlingMarker), marker, 'the page was reloaded')
}

test('two nodes, two browsers: follow, live post, reply notification, profile edit', { timeout: 300_000 }, async t => {
  const shots = []
  const shot = async (page, name) => shots.push(await screenshot(page, name))
  const a = await startNode('a')
  const b = await startNode('b', { bootstrap: a.p2p })
  let browser = null
  t.after(async () => {
    if (browser) await browser.close()
    await b.stop()
    await a.stop()
  })
  try {
    await eventually('B to find A in the DHT', () => finds(b, a), { timeoutMs: 60_000, everyMs: 500 })
    await eventually('A to find B in the DHT', () => finds(a, b), { timeoutMs: 60_000, everyMs: 500 })
    browser = await launchBrowser()
    const pa = await openPage(browser)
    const pb = await openPage(browser, { phone: true })
    const tag = Date.now().toString(36)

    // A sets a profile in its page.
    await pa.goto(`${a.api}/#/me`)
    const icon = await pa.evaluate(() => document.querySelector('link[rel=icon]').href)
    await editProfile(pa, { name: `alice-${tag}`, about: 'first about', picture: icon })
    await shot(pa, '01-a-profile-edit')

    // B follows A by npub in its page.
    await pb.goto(`${b.api}/#/following`)
    await pb.fill('input[name=npub]', a.npub)
    await pb.click('form.follow-form button[type=submit]')
    await pb.locator(`ul.people li[data-pubkey="${a.hex}"]`).waitFor({ timeout: WAIT })
    await eventually("B's node to hold the follow and subscribe to A", async () => {
      const n = (await b.status()).network
      return n.follows === 1 && n.subscribed >= 1
    }, { timeoutMs: WAIT })
    await shot(pb, '02-b-following')

    // A posts; the post appears live on B's home timeline.
    await go(pb, '#/')
    await pb.locator('section.home[data-rendered]').waitFor({ timeout: WAIT })
    const marker = `m-${tag}`
    await pb.evaluate(m => { window.__starlingMarker = m }, marker)
    await pa.goto(`${a.api}/#/`)
    const text = `hello from A ${tag}`
    await pa.fill('textarea[name=compose]', text)
    await pa.click('form.compose button[type=submit]')
    await pa.locator('article.note', { hasText: text }).first().waitFor({ timeout: WAIT })
    await shot(pa, '03-a-home-after-post')
    const live = pb.locator('section.home article.note', { hasText: text })
    await live.first().waitFor({ timeout: WAIT })
    await noReload(pb, marker)
    assert.match(await live.first().locator('.name').first().textContent(), new RegExp(`alice-${tag}`), "B shows A's profile name on A's post")
    await shot(pb, '04-b-home-live-post')

    // B opens the thread, replies and reacts; both reach A's notifications.
    await live.first().locator('a.time').click()
    await pb.locator('section.thread .target article.note', { hasText: text }).waitFor({ timeout: WAIT })
    const reply = `nice post, alice ${tag}`
    await pb.fill('section.thread textarea[name=compose]', reply)
    await pb.click('section.thread form.compose button[type=submit]')
    await pb.locator('section.thread .notes article.note', { hasText: reply }).waitFor({ timeout: WAIT })
    await pb.click('section.thread .target button.react')
    await pb.locator('section.thread .target [data-reacts-of]', { hasText: '1' }).waitFor({ timeout: WAIT })
    await noReload(pb, marker)
    await shot(pb, '05-b-thread-reply')

    // B reposts and quotes A's note.
    await pb.click('section.thread .target button.repost')
    await pb.locator('section.thread .target button.repost.done').waitFor({ timeout: WAIT })
    await pb.click('section.thread .target a.quote')
    const quote = `quoting alice ${tag}`
    await pb.fill('section.thread textarea[name=compose]', quote)
    await pb.click('section.thread form.compose button[type=submit]')
    const quoted = pb.locator('section.home article.note', { hasText: quote })
    await quoted.waitFor({ timeout: WAIT })
    await quoted.locator('article.note.embed', { hasText: text }).waitFor({ timeout: WAIT })
    await pb.locator('section.home article.note.repost', { hasText: text }).waitFor({ timeout: WAIT })
    await noReload(pb, marker)
    await shot(pb, '06-b-home-repost-and-quote')

    await go(pa, '#/notifications')
    const notif = pa.locator('.notif[data-kind=reply]', { hasText: reply })
    await notif.waitFor({ timeout: WAIT })
    assert.equal(await notif.locator('.context .name').first().getAttribute('data-name-of'), b.hex, 'the reply is shown as B\'s')
    await pa.locator('.notif[data-kind=reaction]').first().waitFor({ timeout: WAIT })
    await pa.locator('.notif[data-kind=repost]', { hasText: text }).waitFor({ timeout: WAIT })
    await pa.locator('.notif[data-kind=mention]', { hasText: quote }).waitFor({ timeout: WAIT })
    await shot(pa, '07-a-notifications')

    // A edits its profile again; B's view of A's profile shows the change.
    await go(pa, '#/me')
    await editProfile(pa, { name: `alice-renamed-${tag}`, about: `about, edited ${tag}` })
    await go(pb, `#/p/${a.npub}`)
    await pb.locator('section.profile .profile-head h1', { hasText: `alice-renamed-${tag}` }).waitFor({ timeout: WAIT })
    await pb.locator('section.profile .profile-head .about', { hasText: `about, edited ${tag}` }).waitFor({ timeout: WAIT })
    assert.equal(await pb.locator('section.profile button.follow').textContent(), 'Unfollow')
    await noReload(pb, marker)
    await shot(pb, '08-b-profile-of-a')

    // The other pages: network (each node lists the other as a peer) and B's own profile.
    for (const [page, other, name] of [[pa, b, '09-a-network'], [pb, a, '10-b-network']]) {
      await go(page, '#/network')
      await page.locator('section.network[data-loaded]').waitFor({ timeout: WAIT })
      const otherPeer = (await other.status()).network.peer_id
      await page.locator('table.peers', { hasText: otherPeer.slice(-6) }).waitFor({ timeout: WAIT })
      await page.locator('section.network .reach', { hasText: 'public' }).waitFor({ timeout: WAIT })
      await shot(page, name)
    }
    await go(pb, '#/me')
    await pb.locator('section.profile form.edit').waitFor({ timeout: WAIT })
    await shot(pb, '11-b-own-profile')

    // Private messages (NIP-17, sealed and opened by each node for its page): A writes to
    // B by npub; B reads it in its conversation list, opens it and answers; A reads that.
    await go(pa, '#/messages')
    await pa.locator('section.messages[data-loaded]').waitFor({ timeout: WAIT })
    const secret = `for your eyes only ${tag}`
    await pa.fill('section.messages input[name=to]', b.npub)
    await pa.fill('section.messages textarea[name=text]', secret)
    await pa.click('section.messages form.dm-form button[type=submit]')
    await pa.locator('section.messages .conversation', { hasText: secret }).waitFor({ timeout: WAIT })
    await go(pb, '#/messages')
    const conv = pb.locator('section.messages .conversation', { hasText: secret })
    await conv.waitFor({ timeout: WAIT })
    await conv.locator('a').click()
    await pb.locator('section.messages .dm-thread .dm', { hasText: secret }).waitFor({ timeout: WAIT })
    const answer = `got it ${tag}`
    await pb.fill('section.messages textarea[name=text]', answer)
    await pb.click('section.messages form.dm-form button[type=submit]')
    await pb.locator('section.messages .dm-thread .dm.mine', { hasText: answer }).waitFor({ timeout: WAIT })
    await noReload(pb, marker)
    await shot(pb, '12-b-conversation')
    await pa.locator('section.messages .conversation', { hasText: answer }).waitFor({ timeout: WAIT })
    await shot(pa, '13-a-messages')

    // B unfollows A in its page.
    await go(pb, '#/following')
    await pb.click(`ul.people li[data-pubkey="${a.hex}"] button.unfollow`)
    await pb.locator('ul.people li', { hasText: 'You follow nobody yet.' }).waitFor({ timeout: WAIT })
    await eventually("B's node to drop the follow", async () => (await b.status()).network.follows === 0, { timeoutMs: WAIT })
    await noReload(pb, marker)

    assert.deepEqual(pa.errors, [], "errors in A's page")
    assert.deepEqual(pb.errors, [], "errors in B's page")
  } catch (err) {
    err.message += `\n--- node A log ---\n${a.logTail()}\n--- node B log ---\n${b.logTail()}`
    throw err
  } finally {
    console.log(`screenshots (${shots.length}) in ${SCREENSHOT_DIR}:\n${shots.map(s => `  ${s}`).join('\n')}`)
  }
})

async function editProfile (page, { name, about, picture }) {
  const form = page.locator('section.profile form.edit')
  await form.waitFor({ timeout: WAIT })
  await form.locator('input[name=name]').fill(name)
  await form.locator('textarea[name=about]').fill(about)
  if (picture !== undefined) await form.locator('input[name=picture]').fill(picture)
  await form.locator('span.saved').evaluate(el => { el.textContent = '' })
  await form.locator('button[type=submit]').click()
  await form.locator('span.saved', { hasText: 'saved' }).waitFor({ timeout: WAIT })
  await page.locator('section.profile .profile-head h1', { hasText: name }).waitFor({ timeout: WAIT })
}
