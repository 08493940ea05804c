// An itty-router (v5) app, as a Workers user writes one: npm's `itty-router`, bundled by ftjs at boot.
// A small todo API plus a key/value store, all in memory (the VM persists between requests).
//
//   GET    /                  route list
//   GET    /hello/:name       text
//   GET    /todos?done=       the todos (x-total-count header)
//   POST   /todos             JSON { title } → 201 the todo
//   GET    /todos/:id         the todo | 404
//   PATCH  /todos/:id         JSON { title?, done? } → the todo
//   DELETE /todos/:id         204
//   GET    /kv/:key           { key, value } | 404
//   PUT    /kv/:key           body = value (text) → { ok: true }
//   GET    /boom              throws (AutoRouter answers 500)
//
// cors: the origin https://app.example.com, preflight included.

import { AutoRouter, cors, json, status, StatusError, text, withContent } from 'itty-router';

const { preflight, corsify } = cors({
  origin: ['https://app.example.com'],
  allowMethods: ['GET', 'POST', 'PATCH', 'PUT', 'DELETE'],
  exposeHeaders: ['x-total-count'],
  maxAge: 300,
});

const todos = new Map();
let nextTodoId = 1;
const store = new Map();

function withTodo(request) {
  const todo = todos.get(Number(request.params.id));
  if (!todo) throw new StatusError(404, `todo ${request.params.id} not found`);
  request.todo = todo;
}

const router = AutoRouter({ before: [preflight], finally: [corsify] });

router
  .get('/', () => ({ name: 'itty', routes: ['GET /hello/:name', 'GET /todos', 'POST /todos', 'GET /todos/:id', 'PATCH /todos/:id', 'DELETE /todos/:id', 'GET /kv/:key', 'PUT /kv/:key'] }))
  .get('/hello/:name', ({ name }) => text(`hello, ${name}`))
  .get('/todos', ({ query }) => {
    let list = [...todos.values()];
    if (query.done !== undefined) list = list.filter((t) => String(t.done) === query.done);
    return json(list, { headers: { 'x-total-count': String(list.length) } });
  })
  .post('/todos', withContent, ({ content }) => {
    if (!content || typeof content.title !== 'string' || content.title.trim() === '') throw new StatusError(400, 'a todo needs a "title" (non-empty string)');
    const todo = { id: nextTodoId++, title: content.title.trim(), done: false };
    todos.set(todo.id, todo);
    return json(todo, { status: 201 });
  })
  .get('/todos/:id', withTodo, ({ todo }) => todo)
  .patch('/todos/:id', withTodo, withContent, ({ todo, content }) => {
    if (content?.title !== undefined) todo.title = String(content.title);
    if (content?.done !== undefined) todo.done = Boolean(content.done);
    return todo;
  })
  .delete('/todos/:id', withTodo, ({ todo }) => {
    todos.delete(todo.id);
    return status(204);
  })
  .get('/kv/:key', ({ params }) => {
    const value = store.get(params.key);
    if (value === undefined) throw new StatusError(404, `key ${params.key} not found`);
    return { key: params.key, value };
  })
  .put('/kv/:key', async (request) => {
    store.set(request.params.key, await request.text());
    return { ok: true };
  })
  .get('/boom', () => {
    throw new Error('boom from an itty route');
  });

export default router;
