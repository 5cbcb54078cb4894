//! The guard's word lists (kept out of rustfmt: one word per line would
//! make them unreadable).

pub(crate) const STOP: &[&str] = &[
    "a", "an", "the", "is", "are", "was", "were", "be", "been", "being", "am", "do", "does", "did",
    "i", "me", "my", "mine", "you", "your", "yours", "we", "us", "our", "it", "its", "this", "that",
    "these", "those", "of", "in", "on", "at", "for", "to", "from", "with", "by", "about", "as",
    "how", "what", "which", "who", "whom", "whose", "why", "when", "where", "can", "could", "would",
    "should", "will", "shall", "may", "might", "must", "please", "tell", "give", "show", "and",
    "or", "so", "if", "then", "there", "here", "some", "any", "just", "really", "kindly", "hey",
    "hi", "hello", "thanks", "thank", "need", "want", "like", "know", "let", "get", "got",
    "there's", "it's", "what's", "how's", "s", "t", "also", "into", "onto", "than", "very", "way",
    "ways", "one", "someone", "something", "possible", "exactly", "actually", "basically", "quick",
    "quickly", "briefly", "simple", "simply", "good", "best", "help", "explain", "describe",
    "example", "examples", "using", "use", "via", "have", "has", "had", "having", "go", "going",
    "them", "they", "their", "he", "she", "his", "her", "him", "up", "out", "all", "each", "other",
    "such", "only", "own", "same", "too", "again", "further", "once", "both", "while", "during",
    "through", "until", "between", "within", "per", "vs", "versus", "etc", "okay", "ok", "say",
    "mean", "means", "meaning", "find", "out", "need", "needs", "im", "i'm", "i'd", "i've",
    "you're", "we're", "they're", "able", "way", "steps", "step",
];

pub(crate) const NEGATIONS: &[&str] = &[
    "not", "no", "never", "none", "nothing", "nobody", "nowhere", "neither", "nor", "without",
    "cannot", "non", "lack", "lacking", "lacks", "except", "excluding", "avoid", "prevent", "stop",
    "don't", "doesn't", "didn't", "isn't", "aren't", "wasn't", "weren't", "won't", "wouldn't",
    "shouldn't", "couldn't", "can't", "mustn't", "haven't", "hasn't", "hadn't", "needn't",
    "nothing",
];

pub(crate) const NEGATING_PREFIXES: &[&str] = &[
    "un", "in", "im", "il", "ir", "dis", "non", "anti", "de", "a",
];

pub(crate) const ANTONYMS: &[(&str, &str)] = &[
    ("ascending", "descending"), ("ascend", "descend"), ("increase", "decrease"),
    ("increase", "reduce"), ("increasing", "decreasing"), ("largest", "smallest"),
    ("biggest", "smallest"), ("larger", "smaller"), ("bigger", "smaller"), ("large", "small"),
    ("big", "small"), ("highest", "lowest"), ("higher", "lower"), ("high", "low"), ("max", "min"),
    ("maximum", "minimum"), ("maximize", "minimize"), ("most", "least"), ("more", "less"),
    ("more", "fewer"), ("best", "worst"), ("better", "worse"), ("above", "below"),
    ("over", "under"), ("before", "after"), ("first", "last"), ("earliest", "latest"),
    ("oldest", "newest"), ("older", "younger"), ("older", "newer"), ("old", "new"),
    ("old", "young"), ("import", "export"), ("imports", "exports"), ("encrypt", "decrypt"),
    ("encode", "decode"), ("compress", "decompress"), ("serialize", "deserialize"), ("buy", "sell"),
    ("buying", "selling"), ("add", "remove"), ("add", "subtract"), ("addition", "subtraction"),
    ("enable", "disable"), ("open", "close"), ("start", "stop"), ("start", "end"), ("begin", "end"),
    ("beginning", "end"), ("push", "pull"), ("upload", "download"), ("input", "output"),
    ("send", "receive"), ("sender", "receiver"), ("win", "lose"), ("hot", "cold"), ("warm", "cool"),
    ("fast", "slow"), ("faster", "slower"), ("fastest", "slowest"), ("cheap", "expensive"),
    ("cheaper", "expensive"), ("cheapest", "expensive"), ("long", "short"), ("longer", "shorter"),
    ("longest", "shortest"), ("heavy", "light"), ("heavier", "lighter"), ("left", "right"),
    ("north", "south"), ("east", "west"), ("up", "down"), ("inside", "outside"), ("true", "false"),
    ("yes", "no"), ("positive", "negative"), ("plus", "minus"), ("multiply", "divide"),
    ("multiplication", "division"), ("gain", "loss"), ("profit", "loss"), ("debit", "credit"),
    ("client", "server"), ("sync", "async"), ("synchronous", "asynchronous"), ("public", "private"),
    ("internal", "external"), ("upper", "lower"), ("uppercase", "lowercase"), ("male", "female"),
    ("men", "women"), ("man", "woman"), ("boy", "girl"), ("day", "night"), ("morning", "evening"),
    ("summer", "winter"), ("spring", "autumn"), ("spring", "fall"), ("front", "back"),
    ("top", "bottom"), ("forward", "backward"), ("horizontal", "vertical"), ("inner", "outer"),
    ("include", "exclude"), ("allow", "deny"), ("allow", "block"), ("accept", "reject"),
    ("always", "never"), ("all", "none"), ("everything", "nothing"), ("many", "few"),
    ("rise", "fall"), ("lend", "borrow"), ("easiest", "hardest"), ("easiest", "most difficult"),
    ("taller", "shorter"), ("tallest", "shortest"), ("wider", "narrower"), ("stronger", "weaker"),
    ("strongest", "weakest"), ("richer", "poorer"), ("hotter", "colder"), ("warmer", "colder"),
    ("heavier", "lighter"), ("safer", "riskier"), ("safest", "riskiest"),
    ("healthier", "unhealthier"), ("louder", "quieter"), ("brighter", "darker"),
    ("younger", "older"), ("newer", "older"), ("cheaper", "pricier"), ("thicker", "thinner"),
    ("deeper", "shallower"), ("happier", "sadder"), ("good", "bad"), ("pro", "con"),
    ("upgrade", "downgrade"), ("upload", "download"), ("upstream", "downstream"),
    ("uphill", "downhill"), ("upside", "downside"), ("overtake", "undertake"), ("safe", "risky"),
    ("safer", "more dangerous"), ("win", "lose"), ("winner", "loser"), ("winning", "losing"),
    ("gained", "lost"), ("raised", "lowered"), ("increased", "decreased"), ("import", "export"),
    ("importing", "exporting"), ("buyer", "seller"), ("hottest", "coldest"), ("warmest", "coldest"),
    ("indent", "outdent"), ("safer", "dangerous"), ("safest", "dangerous"), ("highest", "least"),
    ("inflow", "outflow"), ("income", "expense"), ("income", "expenses"), ("sunny", "rainy"),
    ("wettest", "driest"), ("largest", "tiniest"), ("hire", "fire"), ("arrive", "depart"),
    ("arrival", "departure"), ("arrivals", "departures"), ("inbound", "outbound"),
    ("incoming", "outgoing"), ("read", "write"), ("reader", "writer"), ("lock", "unlock"),
    ("install", "uninstall"), ("join", "leave"), ("merge", "split"), ("union", "intersection"),
    ("ceil", "floor"), ("ceiling", "floor"), ("pros", "cons"), ("advantage", "disadvantage"),
    ("benefit", "risk"), ("benefits", "drawbacks"), ("strength", "weakness"),
    ("strengths", "weaknesses"), ("safe", "dangerous"), ("safe", "unsafe"), ("legal", "illegal"),
    ("valid", "invalid"), ("success", "failure"), ("succeed", "fail"), ("pass", "fail"),
    ("win", "loss"), ("entry", "exit"), ("enter", "exit"), ("login", "logout"),
    ("sign in", "sign out"), ("on", "off"), ("online", "offline"), ("wet", "dry"),
    ("full", "empty"), ("rich", "poor"), ("easy", "hard"), ("easy", "difficult"),
    ("easier", "harder"), ("simple", "complex"), ("healthy", "unhealthy"), ("raise", "lower"),
    ("deep", "shallow"), ("thick", "thin"), ("wide", "narrow"), ("early", "late"),
    ("earlier", "later"), ("past", "future"), ("import", "export"), ("sunrise", "sunset"),
    ("dawn", "dusk"), ("inhale", "exhale"), ("attack", "defend"), ("offense", "defense"),
    ("increases", "decreases"), ("add", "delete"), ("push", "pop"), ("previous", "next"),
    ("harder", "softer"), ("hotter", "cooler"), ("rises", "falls"),
    ("expands", "contracts"), ("enable", "disable"), ("enabled", "disabled"), ("lock", "unlock"),
    ("asc", "desc"), ("head", "tail"), ("prefix", "suffix"), ("leading", "trailing"),
    ("overestimate", "underestimate"), ("overweight", "underweight"), ("surplus", "deficit"),
    ("appreciate", "depreciate"), ("bull", "bear"), ("bullish", "bearish"),
    ("hypertension", "hypotension"), ("hyperthyroidism", "hypothyroidism"), ("maximum", "minimal"),
    ("majority", "minority"), ("internal", "external"), ("permit", "forbid"), ("agree", "disagree"),
    ("like", "dislike"), ("love", "hate"), ("sweet", "sour"), ("tall", "short"), ("near", "far"),
    ("closer", "farther"), ("closest", "farthest"), ("nearest", "farthest"), ("expand", "collapse"),
    ("show", "hide"), ("visible", "hidden"), ("connect", "disconnect"), ("mount", "unmount"),
    ("attach", "detach"), ("freeze", "thaw"), ("heat", "cool"), ("heating", "cooling"),
    ("import", "export"), ("zoom in", "zoom out"),
];

/// Days and times that name one moment by themselves.
pub(crate) const DATE_WORDS: &[&str] = &[
    "today", "tonight", "tomorrow", "yesterday", "monday", "tuesday", "wednesday", "thursday",
    "friday", "saturday", "sunday", "weekend", "january", "february", "april", "june", "july",
    "august", "september", "october", "november", "december", "jan", "feb", "apr", "jun", "jul",
    "aug", "sep", "sept", "oct", "nov", "dec", "midnight", "noon", "q1", "q2", "q3", "q4",
    "morning", "afternoon", "evening",
];

/// Words that make a period relative ("last week", "two days ago").
pub(crate) const DATE_MODIFIERS: &[&str] = &[
    "last", "next", "previous", "prior", "coming", "upcoming", "ago", "past", "following", "this",
    "current",
];

/// Periods a modifier makes relative.
pub(crate) const PERIODS: &[&str] = &[
    "day", "days", "week", "weeks", "month", "months", "year", "years", "quarter", "quarters",
    "decade", "century", "night", "morning", "evening", "weekend", "season", "semester", "time",
    "spring", "summer", "autumn", "fall", "winter", "hour", "hours", "minute", "minutes", "monday",
    "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "january", "february",
    "march", "april", "may", "june", "july", "august", "september", "october", "november",
    "december",
];

/// Words that weaken or turn around a comparison, counted like negations.
pub(crate) const DIMINISHERS: &[&str] = &[
    "less", "least", "fewer", "fewest",
];

/// Numeronyms and the words they abbreviate.
pub(crate) const NUMERONYMS: &[(&str, &str)] = &[
    ("k8s", "kubernetes"), ("i18n", "internationalization"), ("l10n", "localization"),
    ("a11y", "accessibility"), ("o11y", "observability"),
];

/// Words after which a question word opens a question ("and why",
/// "explain why", "tell me who", "find out when"), besides a sentence's
/// start: elsewhere it opens a clause ("rows where", "rows whose").
pub(crate) const OPENS_QUESTION: &[&str] = &[
    "and", "or", "but", "so", "explain", "tell", "me", "us", "know", "wonder", "ask", "asking",
    "show", "describe", "understand", "out", "see", "check", "clarify",
];

/// Particles that turn a verb around, either way round (zoom in / zoom
/// out, sign up / sign out).
pub(crate) const OPPOSITE_PARTICLES: &[(&str, &str)] = &[
    ("in", "out"), ("on", "off"), ("up", "down"), ("up", "out"),
];

/// Particles that turn a verb around (zoom in / zoom out, log in / log out).
pub(crate) const PARTICLES: &[&str] = &[
    "in", "out", "up", "down", "on", "off",
];

pub(crate) const UNITS: &[&str] = &[
    "km", "kilometer", "kilometers", "kilometre", "kilometres", "mile", "miles", "mi", "m", "meter",
    "meters", "metre", "metres", "cm", "centimeter", "centimeters", "mm", "millimeter",
    "millimeters", "inch", "inches", "in.", "foot", "feet", "ft", "yard", "yards", "kg", "kilogram",
    "kilograms", "kilo", "kilos", "g", "gram", "grams", "mg", "milligram", "milligrams", "pound",
    "pounds", "lb", "lbs", "ounce", "ounces", "oz", "stone", "ton", "tons", "tonne", "tonnes",
    "liter", "liters", "litre", "litres", "l", "ml", "milliliter", "milliliters", "gallon",
    "gallons", "quart", "quarts", "pint", "pints", "cup", "cups", "tablespoon", "tablespoons",
    "tbsp", "teaspoon", "teaspoons", "tsp", "celsius", "fahrenheit", "kelvin", "°c", "°f", "c", "f",
    "k", "kb", "mb", "gb", "tb", "pb", "kib", "mib", "gib", "tib", "byte", "bytes", "bit", "bits",
    "kbps", "mbps", "gbps", "hz", "khz", "mhz", "ghz", "hour", "hours", "hr", "hrs", "h", "minute",
    "minutes", "min", "mins", "second", "seconds", "sec", "secs", "s", "ms", "millisecond",
    "milliseconds", "microsecond", "microseconds", "nanosecond", "nanoseconds", "ns", "day", "days",
    "week", "weeks", "month", "months", "year", "years", "usd", "eur", "gbp", "jpy", "chf", "cad",
    "aud", "inr", "cny", "dollar", "dollars", "euro", "euros", "yen", "rupee", "rupees", "yuan",
    "franc", "francs", "$", "€", "£", "¥", "%", "percent", "percentage", "mph", "kph", "km/h",
    "kmh", "knot", "knots", "watt", "watts", "w", "kw", "kilowatt", "kilowatts", "kwh", "mw",
    "volt", "volts", "v", "amp", "amps", "ampere", "amperes", "a", "calorie", "calories", "kcal",
    "joule", "joules", "kj", "psi", "bar", "pascal", "pa", "kpa", "atm", "acre", "acres", "hectare",
    "hectares", "sqft", "sq", "square", "cubic", "degree", "degrees", "radian", "radians", "rpm",
    "btu", "mpg", "l/100km", "nautical", "light-year", "light-years", "au", "parsec",
    "megabyte", "megabytes", "gigabyte", "gigabytes", "kilobyte", "kilobytes", "megabit",
    "megabits", "gigabit", "gigabits", "kilobit", "kilobits", "mbit", "gbit", "ma", "milliamp",
    "milliamps", "µa", "ua", "microamp", "microamps", "mah", "µm", "um", "micrometer",
    "micrometers", "micrometre", "micrometres", "micron", "microns", "nm", "nanometer",
    "nanometers", "nanometre", "nanometres", "terabyte", "terabytes", "petabyte", "petabytes",
    "terabit", "terabits", "tbit", "kbit", "kibibyte", "kibibytes", "mebibyte", "mebibytes",
    "gibibyte", "gibibytes", "tebibyte", "tebibytes", "light-second", "light-seconds",
    "light-minute", "light-minutes", "light-hour", "light-hours",
];

/// Units that are units wherever they stand ("in miles", "several
/// gigabytes"); not "foot" ("set foot on"), "cup" or "pound" ("a pound
/// of"), which are units only beside a number.
pub(crate) const ANYWHERE_UNITS: &[&str] = &[
    "celsius", "fahrenheit", "kelvin", "km", "kilometers", "kilometres", "miles", "mile", "kg",
    "kilograms", "pounds", "lbs", "meters", "metres", "feet", "inches", "liters", "litres",
    "gallons", "mb", "gb", "tb", "kb", "usd", "eur", "gbp", "dollars", "euros", "mph", "kph",
    "ounces", "oz", "grams", "cups", "tablespoons", "teaspoons", "mbps", "gbps", "yen", "pesos",
    "rupees", "°c", "°f", "kilobytes", "megabytes", "gigabytes", "terabytes", "tbsp", "tsp",
];

/// Spellings of one unit, the canonical one first ("km" and "kilometres"
/// are the same unit).
pub(crate) const UNIT_GROUPS: &[&[&str]] = &[
    &["km", "kilometer", "kilometers", "kilometre", "kilometres"], &["mile", "miles", "mi"],
    &["m", "meter", "meters", "metre", "metres"], &["cm", "centimeter", "centimeters"],
    &["mm", "millimeter", "millimeters"], &["inch", "inches", "in."], &["foot", "feet", "ft"],
    &["kg", "kilogram", "kilograms", "kilo", "kilos"], &["g", "gram", "grams"],
    &["lb", "lbs", "pound", "pounds"], &["oz", "ounce", "ounces"],
    &["l", "liter", "liters", "litre", "litres"], &["ml", "milliliter", "milliliters"],
    &["°c", "c", "celsius"], &["°f", "f", "fahrenheit"], &["h", "hr", "hrs", "hour", "hours"],
    &["min", "mins", "minute", "minutes"], &["s", "sec", "secs", "second", "seconds"],
    &["ms", "millisecond", "milliseconds"], &["usd", "dollar", "dollars", "$"],
    &["eur", "euro", "euros", "€"], &["gbp", "£"], &["%", "percent", "percentage"],
    &["tbsp", "tablespoon", "tablespoons"], &["tsp", "teaspoon", "teaspoons"], &["cup", "cups"],
    &["day", "days"], &["week", "weeks"], &["month", "months"], &["year", "years"],
    &["kcal", "calorie", "calories"], &["w", "watt", "watts"], &["kw", "kilowatt", "kilowatts"],
    &["mb", "megabyte", "megabytes"], &["gb", "gigabyte", "gigabytes"],
    &["kb", "kilobyte", "kilobytes"], &["ma", "milliamp", "milliamps"],
    &["µa", "ua", "microamp", "microamps"],
    &["µm", "um", "micrometer", "micrometers", "micrometre", "micrometres", "micron", "microns"],
    &["nm", "nanometer", "nanometers", "nanometre", "nanometres"],
    &["tb", "terabyte", "terabytes"], &["pb", "petabyte", "petabytes"],
    &["kib", "kibibyte", "kibibytes"], &["mib", "mebibyte", "mebibytes"],
    &["gib", "gibibyte", "gibibytes"], &["tib", "tebibyte", "tebibytes"],
    &["kbit", "kilobit", "kilobits"], &["mbit", "megabit", "megabits"],
    &["gbit", "gigabit", "gigabits"], &["tbit", "terabit", "terabits"], &["bit", "bits"],
    &["byte", "bytes"], &["light-year", "light-years"], &["light-second", "light-seconds"],
    &["light-minute", "light-minutes"], &["light-hour", "light-hours"],
];

pub(crate) const ORDINALS: &[(&str, &str)] = &[
    ("1", "first"), ("2", "second"), ("3", "third"), ("4", "fourth"), ("5", "fifth"),
    ("6", "sixth"), ("7", "seventh"), ("8", "eighth"), ("9", "ninth"), ("10", "tenth"),
];

/// Words that are a rate per period ("daily" is "per day").
pub(crate) const RATES: &[(&str, &str)] = &[
    ("daily", "day"), ("nightly", "night"), ("weekly", "week"), ("monthly", "month"),
    ("yearly", "year"), ("annually", "year"), ("annual", "year"), ("hourly", "hour"),
];

pub(crate) const NUMBER_WORDS: &[(&str, &str)] = &[
    ("zero", "0"), ("two", "2"), ("three", "3"), ("four", "4"), ("five", "5"), ("six", "6"),
    ("seven", "7"), ("eight", "8"), ("nine", "9"), ("ten", "10"), ("eleven", "11"),
    ("twelve", "12"), ("thirteen", "13"), ("fourteen", "14"), ("fifteen", "15"), ("sixteen", "16"),
    ("seventeen", "17"), ("eighteen", "18"), ("nineteen", "19"), ("twenty", "20"), ("thirty", "30"),
    ("forty", "40"), ("fifty", "50"), ("sixty", "60"), ("seventy", "70"), ("eighty", "80"),
    ("ninety", "90"), ("hundred", "100"), ("thousand", "1000"), ("million", "1000000"),
    ("billion", "1000000000"), ("dozen", "12"), ("half", "0.5"), ("quarter", "0.25"),
    ("double", "x2"), ("twice", "x2"), ("triple", "x3"), ("first", "1st"), ("second", "2nd"),
    ("third", "3rd"), ("fourth", "4th"), ("fifth", "5th"), ("tenth", "10th"),
];

/// Directional words whose object must be the same in both prompts.
pub(crate) const DIRECTIONAL: &[&str] = &[
    "from", "to", "into", "than", "vs", "versus", "before", "after", "over", "under", "against",
    "onto", "toward", "towards", "per", "by", "for", "of", "in", "on", "with", "about",
];

/// The words that open a path's destination ("from" opens its source).
pub(crate) const DESTINATIONS: &[&str] = &["to", "into", "onto", "toward", "towards"];

/// Stop words that name an end of a path ("from two naps a day to one").
pub(crate) const PATH_END_WORDS: &[&str] = &["one", "once", "twice", "here", "there"];

/// Words one language uses and English does not (lower-case).
pub(crate) const LANGUAGES: &[(&str, &[&str])] = &[
    ("en", &["the", "is", "are", "what", "how", "which", "who", "do", "does", "of", "and", "to",
        "a", "in", "my", "i", "you", "can", "should", "with", "for"]),
    ("fr", &["le", "la", "les", "des", "est", "une", "du", "et", "pour", "comment", "quelle",
        "quel", "quels", "quelles", "que", "qui", "dans", "avec", "sur", "pas", "je", "vous",
        "mon", "ma", "mes", "au", "aux", "c'est", "qu'est-ce", "peux", "faire", "entre", "il",
        "elle", "ce", "cette", "sont", "ou", "où", "l'", "d'"]),
    ("de", &["der", "die", "das", "ist", "und", "wie", "ich", "ein", "eine", "nicht", "mit", "für",
        "auf", "was", "welche", "welcher", "ich", "kann", "mein", "meine", "zu", "den", "dem",
        "des", "sind", "von", "im", "wo", "wann", "warum", "einen", "es", "man", "bitte"]),
    ("es", &["el", "los", "las", "es", "y", "cómo", "como", "qué", "que", "una", "un", "para",
        "con", "por", "en", "del", "cuál", "cual", "cuáles", "mi", "puedo", "hacer", "entre",
        "son", "al", "se", "lo", "dónde", "cuándo", "por qué", "está", "hay"]),
    ("it", &["il", "gli", "della", "di", "è", "e", "come", "che", "una", "per", "con", "sono",
        "qual", "quale", "posso", "fare", "nel", "nella", "del", "perché", "dove"]),
    ("pt", &["o", "os", "as", "é", "e", "como", "que", "uma", "um", "para", "com", "por", "em",
        "do", "da", "qual", "posso", "fazer", "não", "onde", "quando", "meu", "minha"]),
];

pub(crate) const SYNONYMS: &[(&str, &str)] = &[
    ("repair", "fix"), ("mend", "fix"), ("create", "make"), ("build", "make"), ("generate", "make"),
    ("produce", "make"), ("large", "big"), ("huge", "big"), ("little", "small"), ("tiny", "small"),
    ("begin", "start"), ("launch", "start"), ("finish", "end"), ("complete", "end"),
    ("display", "show"), ("print", "show"), ("purchase", "buy"), ("automobile", "car"),
    ("vehicle", "car"), ("film", "movie"), ("delete", "remove"), ("erase", "remove"),
    ("drop", "remove"), ("describe", "explain"), ("compose", "write"), ("draft", "write"),
    ("rapid", "fast"), ("speedy", "fast"), ("hard", "difficult"), ("tough", "difficult"),
    ("simple", "easy"), ("sum", "total"), ("modify", "change"), ("alter", "change"),
    ("edit", "change"), ("update", "change"), ("correct", "right"), ("error", "mistake"),
    ("issue", "problem"), ("trouble", "problem"), ("receive", "get"), ("obtain", "get"),
    ("fetch", "get"), ("retrieve", "get"), ("pick", "choose"), ("select", "choose"),
    ("method", "way"), ("approach", "way"), ("technique", "way"), ("cost", "price"),
    ("price", "price"), ("sick", "ill"), ("physician", "doctor"), ("medication", "medicine"),
    ("medicines", "medicine"), ("summarize", "summarise"), ("summary", "summarise"),
    ("recipe", "recipe"), ("cook", "make"), ("bake", "make"), ("prepare", "make"),
    ("requirement", "need"), ("required", "need"), ("require", "need"), ("necessary", "need"),
    ("calculate", "compute"), ("work out", "compute"), ("figure", "compute"),
    ("determine", "compute"), ("convert", "convert"), ("transform", "convert"), ("turn", "convert"),
    ("amount", "number"), ("quantity", "number"), ("count", "number"), ("quickest", "fastest"),
    ("purpose", "use"), ("function", "use"), ("list", "list"), ("enumerate", "list"),
    ("name", "list"), ("meaning", "definition"), ("define", "definition"), ("kid", "child"),
    ("kids", "child"), ("children", "child"), ("colour", "color"), ("favourite", "favorite"),
    ("centre", "center"), ("organise", "organize"), ("optimise", "optimize"),
    ("analyse", "analyze"), ("behaviour", "behavior"), ("licence", "license"),
    ("catalogue", "catalog"),
];
