// The floor from an async handler: the returned promise and its settling (bench/vm-request.ts --guest).
export default {
  async fetch() {
    return new Response('ok');
  },
};
