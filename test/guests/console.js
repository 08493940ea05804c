// A guest for the console and import tests (test/sandbox.test.ts).
//
//   GET /timers   console.time/timeLog/timeEnd around a 20 ms timer, and their warnings
//   GET /groups   console.group/groupEnd indentation
//   GET /import   a computed dynamic import of a bare specifier -> the rejection's message

export default {
  async fetch(request) {
    switch (new URL(request.url).pathname) {
      case '/timers':
        console.time();
        console.time('wait');
        console.time('wait'); // warns: already exists
        await new Promise((resolve) => setTimeout(resolve, 20));
        console.timeLog('wait', 'halfway', { n: 1 });
        console.timeEnd('wait');
        console.timeEnd('wait'); // warns: no such label
        console.timeLog('never'); // warns: no such label
        console.timeEnd();
        return new Response('ok');
      case '/groups':
        console.log('top');
        console.group('outer');
        console.log('in outer');
        console.group();
        console.info('two\nlines');
        console.groupEnd();
        console.warn('back in outer');
        console.groupEnd();
        console.groupEnd(); // one too many: stays at the top
        console.log('top again');
        return new Response('ok');
      case '/import': {
        const name = 'lod' + 'ash';
        try {
          await import(name);
          return new Response('imported?!');
        } catch (error) {
          return new Response(String(error));
        }
      }
    }
    return new Response('not found', { status: 404 });
  },
};
