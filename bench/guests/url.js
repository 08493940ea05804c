// The floor plus the guest's own `new URL(request.url)` (bench/vm-request.ts --guest).
export default {
  fetch(request) {
    const { pathname } = new URL(request.url);
    return new Response(pathname.length > 0 ? 'ok' : 'no');
  },
};
