// What the person may do, read from their access token so the UI can offer
// only what will work. The server decides (it verifies the signature); this
// only reads the claims, never trusts them. Mirrors server/auth.py: roles
// read < write < admin; an exact document id wins over patterns, and among
// matching fnmatch patterns the longest wins.

const RANK = { read: 1, write: 2, admin: 3 }

/** The claims of a JWT, unverified; null when it is not one. */
export const tokenClaims = (token) => {
  if (!token) return null
  const parts = token.split('.')
  if (parts.length !== 3) return null
  try {
    const base64 = parts[1].replace(/-/g, '+').replace(/_/g, '/')
    const padded = base64 + '='.repeat((4 - (base64.length % 4)) % 4)
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0))
    const claims = JSON.parse(new TextDecoder().decode(bytes))
    return claims && typeof claims === 'object' ? claims : null
  } catch {
    return null
  }
}

/** fnmatch (case-sensitive) as a RegExp: * ? [seq] [!seq]. */
const fnmatchRegExp = (pattern) => {
  let out = ''
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]
    if (c === '*') out += '.*'
    else if (c === '?') out += '.'
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2)
      if (end === -1) {
        out += '\\['
      } else {
        let body = pattern.slice(i + 1, end)
        const negate = body.startsWith('!')
        if (negate) body = body.slice(1)
        out += `[${negate ? '^' : ''}${body.replace(/\\/g, '\\\\').replace(/\^/g, '\\^')}]`
        i = end
      }
    } else out += c.replace(/[.+^${}()|\\/\]]/g, '\\$&')
  }
  return new RegExp(`^${out}$`, 's')
}

/** The role the claims give on `docId`, or null (no access). */
export const roleFor = (claims, docId) => {
  const docs = claims && claims.docs
  if (!docs || typeof docs !== 'object') return null
  if (typeof docs[docId] === 'string') return docs[docId]
  let best = null
  for (const [pattern, role] of Object.entries(docs)) {
    if (fnmatchRegExp(pattern).test(docId) && (best === null || pattern.length > best[0])) {
      best = [pattern.length, role]
    }
  }
  return best && best[1]
}

/**
 * What this person may do on `docId`: `{role, canWrite, canAdmin, identity}`.
 * Without a token the server is open and everyone is an admin. `identity`
 * is set when the token fixes who you are: `{userId, name}`.
 */
export const accessFor = (token, docId) => {
  const claims = tokenClaims(token)
  if (!claims) return { role: 'admin', canWrite: true, canAdmin: true, identity: null }
  const role = docId ? roleFor(claims, docId) : null
  const rank = RANK[role] || 0
  return {
    role,
    canWrite: rank >= RANK.write,
    canAdmin: rank >= RANK.admin,
    identity: claims.sub ? { userId: String(claims.sub), name: String(claims.name || claims.sub) } : null
  }
}
