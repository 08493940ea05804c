// A handler that never resolves (/hang), beside ordinary ones: the response deadline answers 504.
let hung = 0;
export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === '/hang') {
      hung++;
      return new Promise(() => {});
    }
    if (url.pathname === '/clear') {
      for (let id = 0; id < 1000; id++) clearTimeout(id);
      return new Response('cleared');
    }
    if (url.pathname === '/late') {
      // Answers, but only after the deadline: the late response is dropped.
      return new Promise((resolve) => setTimeout(() => resolve(new Response('late')), Number(url.searchParams.get('ms'))));
    }
    return new Response('ok hung=' + hung);
  },
};
