// The glue's floor (bench/vm-request.ts --guest): an event in, a Request built, a Response read out.
export default {
  fetch() {
    return new Response('ok');
  },
};
