// The floor, reading the request's method and url (bench/vm-request.ts --guest).
export default {
  fetch(request) {
    return new Response(request.method === 'PUT' || request.url.length > 0 ? 'ok' : 'no');
  },
};
