function parseDateTimeSkeleton(skeleton, rawPattern = skeleton, rangePatterns, intervalFormatFallback) {
	// ftjs: the range (interval) patterns are parsed on first use instead of for every skeleton of a
	// locale: formatRange is rare, and parsing them was most of a locale's first-use cost in QuickJS.
	const result = Object.assign(Object.create(null), {
		pattern: "",
		pattern12: "",
		skeleton,
		rawPattern
	});
	let ranges;
	const computeRanges = () => {
		if (ranges) return ranges;
		const r = Object.create(null);
		const r12 = Object.create(null);
		if (rangePatterns) for (const k in rangePatterns) {
			const key = skeletonTokenToTable2(k);
			const rawPattern = rangePatterns[k];
			const intervalResult = Object.assign(Object.create(null), { patternParts: [] });
			const [pattern, pattern12] = processDateTimePattern(rawPattern, intervalResult);
			r[key] = {
				...intervalResult,
				patternParts: splitRangePattern(pattern)
			};
			r12[key] = {
				...intervalResult,
				patternParts: splitRangePattern(pattern12)
			};
		}
		if (intervalFormatFallback) {
			const patternParts = splitFallbackRangePattern(intervalFormatFallback);
			r.default = { patternParts };
			r12.default = { patternParts };
		}
		const yearFields = ["{relatedYear}", "{yearName}"].filter((field) => result.pattern.includes(field));
		if (yearFields.length) for (const patterns of [r, r12]) for (const field of Object.keys(patterns)) {
			if (field === "default") continue;
			const range = patterns[field].patternParts.map((part) => part.pattern).join("");
			if (yearFields.some((yearField) => !range.includes(yearField))) delete patterns[field];
		}
		return ranges = [r, r12];
	};
	for (const [name, index] of [["rangePatterns", 0], ["rangePatterns12", 1]]) Object.defineProperty(result, name, {
		configurable: true,
		enumerable: true,
		get: () => computeRanges()[index],
		set: (value) => Object.defineProperty(result, name, { value, writable: true, enumerable: true, configurable: true })
	});
	replaceDateTimeTokens(skeleton, result);
	const fields = Object.create(null);
	const [pattern, pattern12] = processDateTimePattern(rawPattern, fields);
	patternFields.set(result, fields);
	result.pattern = pattern;
	result.pattern12 = pattern12;
	return result;
}
