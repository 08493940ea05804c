// The floor plus one request header read (bench/vm-request.ts --guest).
export default {
  fetch(request) {
    return new Response(request.headers.get('content-type') === null ? 'ok' : 'ok!');
  },
};
