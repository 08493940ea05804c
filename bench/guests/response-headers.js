// The floor with kv.js's response: a JSON string body, a status and a headers record (bench/vm-request.ts --guest).
const H = { 'content-type': 'application/json; charset=utf-8' };
export default {
  fetch() {
    return new Response(JSON.stringify({ key: 'k1', value: 'v' }), { status: 200, headers: H });
  },
};
