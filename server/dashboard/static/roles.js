// What each role may do (server/api/deps.py decides; the dashboard only hides what
// the server would refuse anyway).

/** Operators and admins work alerts: acknowledge, assign, comment, close. */
export function mayAct(role) {
  return role === "operator" || role === "admin";
}

/** Admins alone manage the device registry. */
export function mayAdminister(role) {
  return role === "admin";
}

/** "alice (operator, site store-1)": who is signed in, in words. */
export function describe(who) {
  if (!who || !who.name) return "";
  return `${who.name} (${who.role}${who.site ? `, site ${who.site}` : ""})`;
}
