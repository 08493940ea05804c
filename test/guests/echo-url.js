// Answers with the URL the guest was given, so a test can see what the front door made of a request.
export default {
  fetch(request) {
    const url = new URL(request.url);
    return Response.json({ url: request.url, host: url.host, pathname: url.pathname, search: url.search });
  },
};
