export default {
  fetch(request) {
    const url = new URL(request.url);
    const n = Number(url.searchParams.get('n'));
    const kind = url.pathname.slice(1);
    let a;
    if (kind === 'typed') {
      a = new Float64Array(n);
      for (let i = 0; i < n; i++) a[i] = ((i * 7919) % n) - n / 2;
    } else {
      a = [];
      for (let i = 0; i < n; i++) a[i] = (i * 7919) % n;
    }
    a.sort();
    return new Response(JSON.stringify({ n: a.length, first: a[0] }));
  },
};
