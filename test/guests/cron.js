// A guest with a scheduled() handler (test/scheduled.test.ts): each firing is counted, and its
// controller fields and a random draw are logged, so that replay checks them.
const runs = [];

export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === '/runs') return Response.json(runs);
    return new Response('not found', { status: 404 });
  },
  async scheduled(controller, env, ctx) {
    const token = crypto.randomUUID().slice(0, 8);
    runs.push({ cron: controller.cron, scheduledTime: controller.scheduledTime, token });
    controller.noRetry();
    ctx.waitUntil(Promise.resolve());
    await new Promise((resolve) => setTimeout(resolve, 5));
    console.log(`scheduled ${controller.cron} at ${new Date(controller.scheduledTime).toISOString()} token ${token} type ${controller.type} env ${env.NAME}`);
    if (controller.cron === '0 0 1 1 *') throw new Error('new year job failed');
  },
};
