	for (const key of Object.keys(intervalFormats)) {
		if (typeof intervalFormats[key] !== "object") continue;
		const candidate = parseDateTimeSkeleton(key);
		const numericMonth = (month) => month === "numeric" || month === "2-digit";
		if (numericMonth(target.month) !== numericMonth(candidate.month)) continue;
		if (DATE_TIME_PROPS.every((field) => target[field] !== void 0 === (candidate[field] !== void 0))) return intervalFormats[key];
	}
}
function parseDateTimeStyles(