// Formats numbers, dates, relative times, plurals and lists, and sorts names, with Intl and the
// toLocale* methods, for the locale a client asks for (?locale=de). Everything it prints depends only
// on the recorded clock and the request: the same under any host time zone or locale.
//
//   GET /?locale=TAG   -> JSON of formatted values for TAG (default: the guest's default, en-US)

const NAMES = ['Zoë', 'zoe', 'Émile', 'emil', 'Øystein', 'Ørjan', 'Åsa', 'Ángel', 'angel', 'Ñuño', 'Nora', 'item10', 'item9'];

export default {
  fetch(request) {
    const url = new URL(request.url);
    const locale = url.searchParams.get('locale') ?? undefined;
    const now = new Date();
    const body = {
      epochMs: now.getTime(),
      number: (1234567.891).toLocaleString(locale),
      bigint: (12345678901234567890n).toLocaleString(locale),
      price: new Intl.NumberFormat(locale, { style: 'currency', currency: 'EUR' }).format(42.5),
      percent: new Intl.NumberFormat(locale, { style: 'percent', maximumFractionDigits: 1 }).format(0.256),
      compact: new Intl.NumberFormat(locale, { notation: 'compact' }).format(1_250_000),
      now: now.toLocaleString(locale),
      today: now.toLocaleDateString(locale, { dateStyle: 'full' }),
      nowInChatham: now.toLocaleTimeString(locale, { timeZone: 'Pacific/Chatham', timeZoneName: 'short' }),
      yesterday: new Intl.RelativeTimeFormat(locale, { numeric: 'auto' }).format(-1, 'day'),
      plural: [0, 1, 2, 5].map((n) => new Intl.PluralRules(locale).select(n)),
      list: new Intl.ListFormat(locale, { type: 'conjunction' }).format(['red', 'green', 'blue']),
      sorted: [...NAMES].sort(new Intl.Collator(locale, { numeric: true }).compare),
      compared: 'a'.localeCompare('B', locale),
      resolved: new Intl.DateTimeFormat(locale).resolvedOptions(),
    };
    console.log(`formatted for ${body.resolved.locale}: ${body.now}`);
    return Response.json(body);
  },
};
