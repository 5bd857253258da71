//! Japanese-noise synthetic population (shared by tests and examples): built here (not
//! with kiban-synth) with variant kanji, half-width and hiragana kana, spacing, 和暦 dates,
//! address spellings, typos, missing fields, moves, plus twins and namesakes that must never
//! merge.

use std::collections::HashMap;

use kiban_link::LinkRecord;
use kiban_model::{Identity, Sex};

pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

// (kanji, kana, variant spelling or "")
const FAMILY: &[(&str, &str, &str)] = &[
    ("佐藤", "サトウ", ""),
    ("鈴木", "スズキ", ""),
    ("高橋", "タカハシ", "髙橋"),
    ("田中", "タナカ", ""),
    ("渡辺", "ワタナベ", "渡邊"),
    ("伊藤", "イトウ", ""),
    ("山本", "ヤマモト", ""),
    ("中村", "ナカムラ", ""),
    ("小林", "コバヤシ", ""),
    ("加藤", "カトウ", ""),
    ("吉田", "ヨシダ", "𠮷田"),
    ("山田", "ヤマダ", ""),
    ("佐々木", "ササキ", ""),
    ("山口", "ヤマグチ", ""),
    ("松本", "マツモト", ""),
    ("井上", "イノウエ", ""),
    ("木村", "キムラ", ""),
    ("林", "ハヤシ", ""),
    ("斉藤", "サイトウ", "齋藤"),
    ("清水", "シミズ", ""),
    ("山崎", "ヤマザキ", "山﨑"),
    ("森", "モリ", ""),
    ("池田", "イケダ", ""),
    ("橋本", "ハシモト", ""),
    ("阿部", "アベ", ""),
    ("石川", "イシカワ", ""),
    ("中島", "ナカジマ", "中嶋"),
    ("前田", "マエダ", ""),
    ("藤田", "フジタ", ""),
    ("小川", "オガワ", ""),
    ("後藤", "ゴトウ", ""),
    ("岡田", "オカダ", ""),
    ("長谷川", "ハセガワ", ""),
    ("村上", "ムラカミ", ""),
    ("近藤", "コンドウ", ""),
    ("石井", "イシイ", ""),
    ("坂本", "サカモト", ""),
    ("遠藤", "エンドウ", ""),
    ("青木", "アオキ", ""),
    ("藤井", "フジイ", ""),
    ("宮崎", "ミヤザキ", "宮﨑"),
    ("高木", "タカギ", "髙木"),
    ("島田", "シマダ", "嶋田"),
    ("桜井", "サクライ", "櫻井"),
    ("沢田", "サワダ", "澤田"),
    ("浜田", "ハマダ", "濱田"),
    ("広田", "ヒロタ", "廣田"),
    ("渡部", "ワタナベ", ""),
];
const MALE: &[(&str, &str)] = &[
    ("太郎", "タロウ"),
    ("健太", "ケンタ"),
    ("健二", "ケンジ"),
    ("翔太", "ショウタ"),
    ("大輔", "ダイスケ"),
    ("拓也", "タクヤ"),
    ("直樹", "ナオキ"),
    ("誠", "マコト"),
    ("浩", "ヒロシ"),
    ("隆", "タカシ"),
    ("茂", "シゲル"),
    ("勇", "イサム"),
    ("和夫", "カズオ"),
    ("正雄", "マサオ"),
    ("博之", "ヒロユキ"),
    ("達也", "タツヤ"),
    ("翼", "ツバサ"),
    ("蓮", "レン"),
    ("大翔", "ヒロト"),
    ("悠真", "ユウマ"),
    ("陽斗", "ハルト"),
    ("湊", "ミナト"),
    ("一郎", "イチロウ"),
    ("修", "オサム"),
    ("清", "キヨシ"),
    ("進", "ススム"),
    ("昭", "アキラ"),
    ("亮", "リョウ"),
    ("雄一", "ユウイチ"),
    ("晋也", "シンヤ"),
    ("國男", "クニオ"),
    ("榮作", "エイサク"),
];
const FEMALE: &[(&str, &str)] = &[
    ("花子", "ハナコ"),
    ("陽子", "ヨウコ"),
    ("恵子", "ケイコ"),
    ("京子", "キョウコ"),
    ("幸子", "サチコ"),
    ("裕子", "ユウコ"),
    ("真由美", "マユミ"),
    ("美穂", "ミホ"),
    ("愛", "アイ"),
    ("優子", "ユウコ"),
    ("由美", "ユミ"),
    ("明美", "アケミ"),
    ("直美", "ナオミ"),
    ("智子", "トモコ"),
    ("久美子", "クミコ"),
    ("結衣", "ユイ"),
    ("陽菜", "ヒナ"),
    ("美咲", "ミサキ"),
    ("葵", "アオイ"),
    ("凛", "リン"),
    ("千尋", "チヒロ"),
    ("舞", "マイ"),
    ("彩", "アヤ"),
    ("綾香", "アヤカ"),
    ("麻衣", "マイ"),
    ("里奈", "リナ"),
    ("瞳", "ヒトミ"),
    ("恵", "メグミ"),
    ("純子", "ジュンコ"),
    ("眞理子", "マリコ"),
];
// (prefecture, municipality, towns, postal prefix)
const PLACES: &[(&str, &str, &[&str], &str)] = &[
    (
        "東京都",
        "千代田区",
        &["千代田", "神田神保町", "麹町"],
        "100",
    ),
    (
        "東京都",
        "新宿区",
        &["西新宿", "市谷本村町", "高田馬場"],
        "160",
    ),
    ("東京都", "八王子市", &["元本郷町", "明神町", "旭町"], "192"),
    ("神奈川県", "横浜市中区", &["山下町", "本町", "元町"], "231"),
    (
        "神奈川県",
        "川崎市川崎区",
        &["駅前本町", "砂子", "小川町"],
        "210",
    ),
    ("大阪府", "大阪市北区", &["梅田", "中之島", "天満"], "530"),
    ("愛知県", "名古屋市中区", &["栄", "錦", "丸の内"], "460"),
    ("三重県", "四日市市", &["諏訪町", "西新地", "浜田町"], "510"),
    (
        "北海道",
        "札幌市中央区",
        &["北一条西", "南二条東", "大通西"],
        "060",
    ),
    (
        "福岡県",
        "福岡市博多区",
        &["博多駅前", "中洲", "住吉"],
        "812",
    ),
];

const KANJI_NUM: [&str; 10] = ["〇", "一", "二", "三", "四", "五", "六", "七", "八", "九"];

#[derive(Clone)]
struct Person {
    fam: usize,
    given: (&'static str, &'static str),
    sex: Sex,
    dob: (i32, u32, u32),
    place: usize,
    town: usize,
    block: (u32, u32, u32),
    phone: String,
    insurer: String,
    symbol: String,
    number: String,
    branch: u32,
    /// Where the person moved to (used by registrations made after the move) and the card
    /// issued there (国保 changes with the municipality).
    new_place: (usize, usize, (u32, u32, u32)),
    new_card: (String, String, String),
}

fn person(r: &mut Rng) -> Person {
    // Zipf-ish family names: common names (佐藤, 鈴木 …) much more frequent
    let fam = (FAMILY.len() as f64 * ((r.below(1000) as f64 + 1.0) / 1000.0).powi(3)) as usize
        % FAMILY.len();
    let sex = if r.chance(0.5) {
        Sex::Male
    } else {
        Sex::Female
    };
    let given = *r.pick(if sex == Sex::Male { MALE } else { FEMALE });
    Person {
        fam,
        given,
        sex,
        dob: (
            1930 + r.below(85) as i32,
            1 + r.below(12) as u32,
            1 + r.below(28) as u32,
        ),
        place: r.below(PLACES.len()),
        town: r.below(3),
        block: (
            1 + r.below(9) as u32,
            1 + r.below(30) as u32,
            1 + r.below(20) as u32,
        ),
        phone: format!(
            "0{}0{:04}{:04}",
            7 + r.below(3),
            r.below(10_000),
            r.below(10_000)
        ),
        insurer: format!("{:06}", r.below(1_000_000)),
        symbol: format!("{}", 1 + r.below(99)),
        number: format!("{}", 1 + r.below(99_999)),
        branch: 1,
        new_place: (
            r.below(PLACES.len()),
            r.below(3),
            (
                1 + r.below(9) as u32,
                1 + r.below(30) as u32,
                1 + r.below(20) as u32,
            ),
        ),
        new_card: (
            format!("{:06}", r.below(1_000_000)),
            format!("{}", 1 + r.below(99)),
            format!("{}", 1 + r.below(99_999)),
        ),
    }
}

fn to_wareki(y: i32, m: u32, d: u32) -> String {
    let (era, start) = if (y, m, d) >= (1989, 1, 8) {
        ("平成", 1989)
    } else {
        ("昭和", 1926)
    };
    let (era, start) = if (y, m) >= (2019, 5) {
        ("令和", 2019)
    } else {
        (era, start)
    };
    let n = y - start + 1;
    if n == 1 {
        format!("{era}元年{m}月{d}日")
    } else {
        format!("{era}{n}年{m}月{d}日")
    }
}

fn halfwidth(s: &str) -> String {
    // a small katakana → half-width table (dakuten split) for the kana in this test
    let table: &[(&str, &str)] = &[
        ("ガ", "ｶﾞ"),
        ("ギ", "ｷﾞ"),
        ("グ", "ｸﾞ"),
        ("ゲ", "ｹﾞ"),
        ("ゴ", "ｺﾞ"),
        ("ザ", "ｻﾞ"),
        ("ジ", "ｼﾞ"),
        ("ズ", "ｽﾞ"),
        ("ダ", "ﾀﾞ"),
        ("ド", "ﾄﾞ"),
        ("バ", "ﾊﾞ"),
        ("ブ", "ﾌﾞ"),
        ("ベ", "ﾍﾞ"),
        ("ア", "ｱ"),
        ("イ", "ｲ"),
        ("ウ", "ｳ"),
        ("エ", "ｴ"),
        ("オ", "ｵ"),
        ("カ", "ｶ"),
        ("キ", "ｷ"),
        ("ク", "ｸ"),
        ("ケ", "ｹ"),
        ("コ", "ｺ"),
        ("サ", "ｻ"),
        ("シ", "ｼ"),
        ("ス", "ｽ"),
        ("セ", "ｾ"),
        ("ソ", "ｿ"),
        ("タ", "ﾀ"),
        ("チ", "ﾁ"),
        ("ツ", "ﾂ"),
        ("テ", "ﾃ"),
        ("ト", "ﾄ"),
        ("ナ", "ﾅ"),
        ("ニ", "ﾆ"),
        ("ヌ", "ﾇ"),
        ("ネ", "ﾈ"),
        ("ノ", "ﾉ"),
        ("ハ", "ﾊ"),
        ("ヒ", "ﾋ"),
        ("フ", "ﾌ"),
        ("ヘ", "ﾍ"),
        ("ホ", "ﾎ"),
        ("マ", "ﾏ"),
        ("ミ", "ﾐ"),
        ("ム", "ﾑ"),
        ("メ", "ﾒ"),
        ("モ", "ﾓ"),
        ("ヤ", "ﾔ"),
        ("ユ", "ﾕ"),
        ("ヨ", "ﾖ"),
        ("ラ", "ﾗ"),
        ("リ", "ﾘ"),
        ("ル", "ﾙ"),
        ("レ", "ﾚ"),
        ("ロ", "ﾛ"),
        ("ワ", "ﾜ"),
        ("ン", "ﾝ"),
        ("ョ", "ｮ"),
        ("ュ", "ｭ"),
        ("ャ", "ｬ"),
        ("ッ", "ｯ"),
        (" ", " "),
    ];
    s.chars()
        .map(|c| {
            let cs = c.to_string();
            table
                .iter()
                .find(|(f, _)| *f == cs)
                .map_or(cs, |(_, h)| h.to_string())
        })
        .collect()
}

fn hiragana(s: &str) -> String {
    s.chars()
        .map(|c| {
            if ('ァ'..='ヶ').contains(&c) {
                char::from_u32(c as u32 - 0x60).unwrap_or(c)
            } else {
                c
            }
        })
        .collect()
}

fn kanji_number(n: u32) -> String {
    if n < 10 {
        KANJI_NUM[n as usize].to_string()
    } else {
        let (t, o) = (n / 10, n % 10);
        let tens = if t == 1 {
            "十".to_string()
        } else {
            format!("{}十", KANJI_NUM[t as usize])
        };
        if o == 0 {
            tens
        } else {
            format!("{tens}{}", KANJI_NUM[o as usize])
        }
    }
}

fn fullwidth_digits(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_digit() {
                char::from_u32(c as u32 - 0x30 + 0xFF10).unwrap_or(c)
            } else {
                c
            }
        })
        .collect()
}

/// One hospital's registration of `p`, with noise.
fn register(r: &mut Rng, p: &Person, reg: &str) -> Identity {
    let mut id = Identity::new(reg);
    let (fk, fkana, fvar) = FAMILY[p.fam];
    let fam_kanji = if !fvar.is_empty() && r.chance(0.4) {
        fvar
    } else {
        fk
    };
    let given_kanji = p.given.0;
    let sep = *r.pick(&["\u{3000}", " ", ""]);
    let mut kana_given = p.given.1.to_string();
    let mut kanji_given = given_kanji.to_string();
    // typo in exactly one script (the other stays right)
    if r.chance(0.03) {
        let mut cs: Vec<char> = kana_given.chars().collect();
        let k = r.below(cs.len());
        cs[k] = *r.pick(&['ア', 'カ', 'サ', 'タ', 'ナ', 'ハ', 'マ', 'ラ']);
        kana_given = cs.into_iter().collect();
    } else if r.chance(0.02) && kanji_given.chars().count() >= 2 {
        let mut cs: Vec<char> = kanji_given.chars().collect();
        cs[1] = *r.pick(&['子', '夫', '朗', '一']);
        kanji_given = cs.into_iter().collect();
    }
    // every registration carries a name in at least one script
    let has_kanji = r.chance(0.95);
    if has_kanji {
        id.name_kanji = Some(format!("{fam_kanji}{sep}{kanji_given}"));
    }
    if !has_kanji || r.chance(0.9) {
        let kana = format!("{fkana} {kana_given}");
        id.name_kana = Some(match r.below(4) {
            0 => halfwidth(&kana),
            1 => hiragana(&kana),
            2 => kana.replace(' ', "\u{3000}"),
            _ => kana,
        });
    }
    let (y, mut m, mut d) = p.dob;
    if r.chance(0.02) && d <= 12 {
        std::mem::swap(&mut m, &mut d);
    }
    id.birth_date = Some(match r.below(4) {
        0 => to_wareki(y, m, d),
        1 => format!("{y}/{m}/{d}"),
        2 => fullwidth_digits(&format!("{y}-{m:02}-{d:02}")),
        _ => format!("{y}-{m:02}-{d:02}"),
    });
    id.sex = p.sex;
    // moves: a different place and block
    let (mut place, mut town, mut block) = (p.place, p.town, p.block);
    let moved = r.chance(0.05);
    if moved {
        (place, town, block) = p.new_place;
    }
    let (pref, city, towns, zip) = PLACES[place];
    let t = towns[town];
    let addr_tail = match r.below(4) {
        0 => format!(
            "{}丁目{}番地{}号",
            kanji_number(block.0),
            kanji_number(block.1),
            kanji_number(block.2)
        ),
        1 => fullwidth_digits(&format!("{}－{}－{}", block.0, block.1, block.2)),
        2 => format!("{}丁目{}番{}号", block.0, block.1, block.2),
        _ => format!("{}-{}-{}", block.0, block.1, block.2),
    };
    if r.chance(0.98) {
        let pref = if r.chance(0.2) { "" } else { pref };
        id.address = Some(format!("{pref}{city}{t}{addr_tail}"));
        id.postal_code = Some(format!(
            "{zip}-{:04}",
            (town as u32 * 1000 + block.0 * 10) % 10_000
        ));
    }
    if r.chance(0.92) {
        let ph = &p.phone;
        id.phone = Some(match r.below(3) {
            0 => format!("{}-{}-{}", &ph[..3], &ph[3..7], &ph[7..]),
            1 => fullwidth_digits(ph),
            _ => ph.clone(),
        });
    }
    let (insurer, symbol, number) = if moved && p.fam.is_multiple_of(3) {
        (&p.new_card.0, &p.new_card.1, &p.new_card.2)
    } else {
        (&p.insurer, &p.symbol, &p.number)
    };
    if r.chance(0.9) {
        id.insurer_number = Some(if r.chance(0.5) {
            format!("{insurer:0>8}")
        } else {
            insurer.clone()
        });
        id.insured_symbol = Some(symbol.clone());
        id.insured_number = Some(if r.chance(0.3) {
            format!("{number:0>8}")
        } else {
            number.clone()
        });
        id.insured_branch = Some(if r.chance(0.5) {
            format!("{:02}", p.branch)
        } else {
            p.branch.to_string()
        });
    }
    id
}

pub struct World {
    pub records: Vec<LinkRecord>,
    pub truth: HashMap<String, String>,
    /// Pairs of person ids that must never share a cluster (twins, namesakes).
    pub hard_pairs: Vec<(String, String, &'static str)>,
}

pub fn world(seed: u64, n_people: usize) -> World {
    world_in(seed, n_people, 8)
}

/// `n_people` persons (plus 20 twins and 20 namesakes) registered 1–4 times across
/// `hospitals` hospitals (at most one registration per hospital).
pub fn world_in(seed: u64, n_people: usize, hospitals: usize) -> World {
    let mut r = Rng(seed);
    let mut people: Vec<Person> = (0..n_people).map(|_| person(&mut r)).collect();
    let mut hard_pairs = Vec::new();
    // twins: same family, address, phone, card (other branch), birth date; different given name
    for k in 0..20 {
        let a = people[k].clone();
        let mut b = a.clone();
        let pool = if b.sex == Sex::Male { MALE } else { FEMALE };
        while b.given.1 == a.given.1 || b.given.0 == a.given.0 {
            b.given = *r.pick(pool);
        }
        b.branch = 2;
        if k.is_multiple_of(3) {
            b.sex = if a.sex == Sex::Male {
                Sex::Female
            } else {
                Sex::Male
            };
            b.given = *r.pick(if b.sex == Sex::Male { MALE } else { FEMALE });
        }
        hard_pairs.push((format!("P{k}"), format!("P{}", people.len()), "twin"));
        people.push(b);
    }
    // namesakes: same name, sex and birth date; everything else different
    for k in 20..40 {
        let a = people[k].clone();
        let mut b = person(&mut r);
        b.fam = a.fam;
        b.given = a.given;
        b.sex = a.sex;
        b.dob = a.dob;
        if b.place == a.place {
            b.place = (b.place + 1) % PLACES.len();
        }
        hard_pairs.push((format!("P{k}"), format!("P{}", people.len()), "namesake"));
        people.push(b);
    }
    let mut records = Vec::new();
    let mut truth = HashMap::new();
    for (pi, p) in people.iter().enumerate() {
        let copies = 1 + r.below(4.min(hospitals));
        let mut hospitals: Vec<usize> = (0..hospitals).collect();
        for c in 0..copies {
            let h = hospitals.remove(r.below(hospitals.len()));
            let reg = format!("H{h:02}-{pi:07}-{c}");
            let id = register(&mut r, p, &reg);
            truth.insert(reg.clone(), format!("P{pi}"));
            records.push(LinkRecord {
                registration_id: reg,
                source: format!("H{h:02}"),
                identity: id,
            });
        }
    }
    World {
        records,
        truth,
        hard_pairs,
    }
}
