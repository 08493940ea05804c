	for (const key of Object.keys(intervalFormats)) {
		if (typeof intervalFormats[key] !== "object") continue;
		// ftjs: the parse of a key is pure; memoized instead of repeated for each of a locale's ~500 skeletons.
		let candidate = parsedIntervalKeys.get(key);
		if (candidate === void 0) parsedIntervalKeys.set(key, candidate = parseDateTimeSkeleton(key));
		const numericMonth = (month) => month === "numeric" || month === "2-digit";
		if (numericMonth(target.month) !== numericMonth(candidate.month)) continue;
		if (DATE_TIME_PROPS.every((field) => target[field] !== void 0 === (candidate[field] !== void 0))) return intervalFormats[key];
	}
}
const parsedIntervalKeys = new Map();
function parseDateTimeStyles(