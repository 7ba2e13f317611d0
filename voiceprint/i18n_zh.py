"""Simplified Chinese (zh-CN) for the evidence report and the workbench, keyed by the English text.

Terms (one Chinese word for each, everywhere): voiceprint 声纹, voiceprint library 声纹库, enrol 采集入库,
query/compare 比对, hit 命中, likelihood ratio 似然比 (LR), log10 LR 对数似然比 (log10 LR), person 人员,
suspect 嫌疑人, prior offender 前科人员, key person 重点人员, case 案件, case recording 涉案录音,
phone number 电话号码, lead 线索, reverse strike 反向追查, CDRs 话单, investigator 侦查员, technician 技术员,
analyst 分析员, supervisor 审核员, approve/reject 批准/驳回, audit trail 审计日志, examiner 鉴定人,
weak evidence 证据较弱, net speech 有效语音, diarisation 说话人分离, unknown voice 未知声音, gate 门限,
proposition 假设 (H<sub>p</sub>/H<sub>d</sub>), relevant population 相关人群, chain of custody 保管链,
calibration 校准, back end 后端, channel (of a stereo file) 声道, channel pair (wideband/narrowband) 信道.
A "voice" numbered within a recording is a 说话人. Units (s, dB, Hz, %) stay SI symbols.
Keys with ``{placeholders}`` are templates (see :mod:`voiceprint.i18n`).
"""

from __future__ import annotations

MESSAGES: dict[str, str] = {
    # -- words shared by the pages and the report ------------------------------------------------------
    "n/a": "不适用",
    "none": "无",
    "yes": "是",
    "no": "否",
    "name": "姓名",
    "file": "文件",
    "bytes": "字节数",
    "channel": "声道",
    "voice": "说话人",
    "channel {channel}, voice {voice}": "声道 {channel}，说话人 {voice}",
    "{file} - channel {channel}, voice {voice}": "{file} - 声道 {channel}，说话人 {voice}",
    "net speech": "有效语音",
    "rank": "排名",
    "person": "人员",
    "persons": "人员",
    "category": "类别",
    "score": "得分",
    "LR": "似然比 (LR)",
    "log10 LR": "对数似然比 (log10 LR)",
    "verbal scale": "等级表述",
    "expected false hits": "预期误命中数",
    "case": "案件",
    "cases": "案件",
    "phones": "电话号码",
    "number": "号码",
    "date": "日期",
    "time": "时间",
    "status": "状态",
    "operator": "操作人",
    "action": "操作",
    "target": "对象",
    "id": "编号",
    "voiceprint": "声纹",
    "unknown voice": "未知声音",
    "{warning} - weak evidence": "{warning}——证据较弱",
    "weak": "弱",
    "no hit": "无命中",

    # -- categories, roles, statuses and channel kinds (codes stored in the library) --------------------
    "prior_offender": "前科人员",
    "prior offender": "前科人员",
    "suspect": "嫌疑人",
    "key_person": "重点人员",
    "key person": "重点人员",
    "other": "其他",
    "technician": "技术员",
    "investigator": "侦查员",
    "analyst": "分析员",
    "supervisor": "审核员",
    "open": "在办",
    "closed": "已结案",
    "enrolled": "已入库",
    "already": "此前已入库",
    "refused": "被拒绝",
    "pending approval": "待批准",
    "searchable": "可比对",
    "auto": "自动归并",
    "confirmed": "已确认",
    "promoted": "已转为人员",
    "wideband": "宽带",
    "narrowband": "窄带（8 kHz 电话信道）",
    "cross": "跨信道",
    "all": "全部信道",

    # -- the evidence report ---------------------------------------------------------------------------
    "Investigative lead: speaker search (1:N)": "侦查线索：说话人检索（1:N）",
    "Evaluative comparison: speaker comparison (1:1)": "评价性比对：说话人比对（1:1）",
    "voiceprint evidence report {report_id}": "voiceprint 声纹检验报告 {report_id}",
    '"page " counter(page) " of " counter(pages)': '"第 " counter(page) " 页，共 " counter(pages) " 页"',  # CSS, the PDF's footer
    "INVESTIGATIVE LEAD - not an identification": "侦查线索——不是身份认定",
    "EVALUATIVE COMPARISON": "评价性比对",
    'This is the HTML view; the PDF carries "page x of y" on every page.': "这是 HTML 视图；PDF 版每页标有“第 x 页，共 y 页”。",
    "Report id": "报告编号",
    "Result id": "结果编号",
    "Software version": "软件版本",
    "commit": "提交",
    "Examiner": "鉴定人",
    "Date": "日期",
    "Library": "声纹库",
    "Audit trail chain head": "审计日志链头",
    "Request": "委托",
    "Issued by (laboratory)": "鉴定机构",
    "Requested by": "委托单位",
    "Request reference": "委托编号",
    "Items received": "受理日期",
    "not stated": "未注明",
    "The request, this report's id and the examiner are recorded in audit row {id}: the chain head below.":
        "以上委托信息、本报告编号和鉴定人记录于审计日志第 {id} 行，即下方的审计日志链头。",
    "row {id}": "第 {id} 行",
    "Check with <code>voiceprint audit verify --row N</code> (N: the row above): the trail behind this report is intact when "
    "the chain verifies and still contains this row with this hash.":
        "用 <code>voiceprint audit verify --row N</code>（N 为上面的行号）核验：哈希链校验通过且仍含该行及此哈希值时，本报告所依据的审计日志完整无损。",
    "<b>Investigative lead.</b> This is the result of a search of one recording against a library of enrolled persons (1:N). "
    "It tells an investigator whom to look at first. It is not an identification and not an evaluative opinion; an identification "
    "needs an evaluative 1:1 comparison by an examiner, with reference recordings taken for that purpose.":
        "<b>侦查线索。</b>本结果是以一段录音在已入库人员的声纹库中检索（1:N）所得，用于提示侦查员优先排查的对象。"
        "它不是身份认定，也不是评价性意见；身份认定须由鉴定人使用为此专门提取的样本录音进行评价性 1:1 比对。",
    "<b>Evaluative comparison.</b> A 1:1 comparison of two recordings, reported as a likelihood ratio for two competing propositions.":
        "<b>评价性比对。</b>对两段录音进行 1:1 比对，结果以两个对立假设下的似然比表述。",
    "1. Question and propositions": "1. 检验问题与假设",
    "<b>Question:</b> which of the persons enrolled in the library, if any, may be the speaker of the questioned recording(s)?":
        "<b>检验问题：</b>声纹库中已入库的人员里，哪一位（如有）可能是待检录音的说话人？",
    "<b>For each candidate:</b> H<sub>p</sub> (same speaker): the questioned voice and the candidate's enrolled voice samples come "
    "from the same speaker. H<sub>d</sub> (different speakers): they come from different speakers of the relevant population.":
        "<b>对每名候选人：</b>H<sub>p</sub>（同一说话人）：待检声音与该候选人的入库声纹样本来自同一说话人。"
        "H<sub>d</sub>（不同说话人）：二者来自相关人群中的不同说话人。",
    "<b>Question:</b> do recordings A and B hold the voice of the same speaker?": "<b>检验问题：</b>录音 A 与录音 B 中是否为同一说话人的声音？",
    "H<sub>p</sub> (same speaker): the voices in A and B come from the same speaker. H<sub>d</sub> (different speakers): they come "
    "from different speakers of the relevant population.":
        "H<sub>p</sub>（同一说话人）：A 与 B 中的声音来自同一说话人。H<sub>d</sub>（不同说话人）：二者来自相关人群中的不同说话人。",
    "<b>Relevant population:</b> {population}.": "<b>相关人群：</b>{population}。",
    "for each likelihood ratio, {development}; the search itself ran over the {n} persons enrolled in library '{library}' "
    "(an investigative search, not a relevant-population sample). Neither sex nor dialect was matched":
        "各似然比的相关人群为{development}；检索本身在声纹库“{library}”的 {n} 名已入库人员中进行（属侦查检索，并非相关人群抽样）。"
        "未按性别或方言匹配",
    "speakers of the development corpora the calibration was fitted on ({corpora}; see Method)": "拟合校准所用开发语料库中的说话人（{corpora}；见检验方法）",
    "no back end is fitted: no relevant population (the score is uncalibrated)": "未拟合后端：无相关人群（得分未经校准）",
    "2. Items examined and chain of custody": "2. 检材与保管链",
    "item": "检材",
    "Reference samples (the enrolled sample each top hit was compared through)": "比对样本（每个首位命中所比对的入库样本）",
    "Cross-validated on the development speakers: each speaker's trials were scored by a back end fitted without them. The rows of "
    "this case's channel pair are marked; figures on held-out test speakers follow.":
        "在开发集说话人上交叉验证：每名说话人的试验均由未使用该说话人拟合的后端评分。与本案信道组合相同的行已标出；"
        "留出测试集说话人上的结果见下表。",
    "Held-out test speakers": "留出测试集说话人",
    "log10 LR bounds (ELUB) by the test recording's net speech": "按检材录音净语音时长的 log10 LR 界限（ELUB）",
    "to": "至",
    "Held-out validation file (SHA-256 of validation.json)": "留出验证文件（validation.json 的 SHA-256）",
    "Speakers never used to fit or tune the back end, scored through the same calibration, by channel pair and by the net speech of "
    "the questioned recording. A misleading LR: above 1 for different speakers, below 1 for the same speaker. The row of each voice's "
    "channel pair and duration is marked.":
        "从未用于拟合或调整后端的说话人，经同一校准评分，按信道组合和检材录音的净语音时长分列。误导性似然比：不同说话人时大于 1，"
        "同一说话人时小于 1。与各说话人的信道组合和时长相同的行已标出。",
    "this case: {voices}": "本案：{voices}",
    "the comparison": "本次比对",
    "{voice} ({pair}, {speech}): no held-out trials of this duration; the Tippett plot shows the channel pair's trials of every duration":
        "{voice}（{pair}，{speech}）：留出测试集中没有此时长的试验；Tippett 图显示该信道组合全部时长的试验",
    "{voice} ({pair}, {speech}): no held-out trials of this channel pair; no held-out figure applies to it":
        "{voice}（{pair}，{speech}）：留出测试集中没有此信道组合的试验，没有适用的留出验证数据",
    "measured {when}": "测定于 {when}",
    "test (never used to fit or tune the back end)": "测试集（从未用于拟合或调整后端）",
    "{condition} ({speakers} speakers, {tests} tests)": "{condition}（{speakers} 名说话人，{tests} 次测试）",
    "channel pair": "信道组合",
    "questioned speech": "检材净语音",
    "same-speaker trials": "同一说话人试验数",
    "different-speaker trials": "不同说话人试验数",
    "misleading (same / different)": "误导性（同一 / 不同）",
    "this case": "本案",
    "every duration": "全部时长",
    "{bucket} of speech in the questioned recording": "检材录音净语音 {bucket}",
    "held-out test speakers (never used to fit the back end), {pair} trials, {speech}": "留出测试集说话人（从未用于拟合后端），{pair}试验，{speech}",
    "no back end is fitted": "未拟合后端",
    "no held-out validation was measured for this back end (`voiceprint backend validate`)": "此后端尚未做留出验证（`voiceprint backend validate`）",
    "the held-out validation file is not the one hashed in model.json: run `voiceprint backend validate`":
        "留出验证文件与 model.json 中记录的哈希不符：请运行 `voiceprint backend validate`",
    "the held-out validation was measured on another back end (refit since): run `voiceprint backend validate`":
        "留出验证是在另一个后端上测得的（此后已重新拟合）：请运行 `voiceprint backend validate`",
    "this case's channel pair": "本案信道组合",
    "Chain of custody (from the audit trail)": "保管链（取自审计日志）",
    "audit row": "审计日志行",
    "row hash": "行哈希",
    "no audit row names these recordings": "审计日志中没有涉及这些录音的记录",
    "3. Case assessment": "3. 检材评估",
    "Net speech": "有效语音",
    "{net} s of {total} s": "{net} s（总时长 {total} s）",
    "SNR (frame energies)": "信噪比（帧能量）",
    "Clipping": "削波",
    "{percent} % of samples": "{percent} % 的采样点",
    "Bandwidth (99 % energy)": "带宽（99 % 能量）",
    "Codec, source rate": "编解码器、原始采样率",
    "Channel mismatch": "信道失配",
    "questioned recording is narrowband telephone speech": "待检录音为窄带电话语音（8 kHz 电话信道）",
    "questioned recording is wideband": "待检录音为宽带录音",
    "both sides are the same recording (same SHA-256 and channel): a recording always matches itself, so this comparison says "
    "nothing about who is speaking - compare it with a different recording":
        "两侧是同一段录音（SHA-256 与声道均相同）：录音总与自身匹配，此比对不能说明说话人是谁——请与另一段录音比对",
    " (telephone-band sound saved at {rate} Hz: nothing above 4 kHz)": "（以 {rate} Hz 保存的电话频带声音：4 kHz 以上无内容）",
    "; the top hit's enrolled voiceprint was compared through the <b>{calibration}</b> calibration":
        "；排名第一的命中人员的入库声纹按<b>{calibration}</b>校准进行比对",
    " (one side wideband, the other narrowband: a cross-channel comparison)": "（一方为宽带、另一方为窄带：跨信道比对）",
    "Speech time ranges": "语音时间段",
    "({n} ranges)": "（共 {n} 段）",
    "gate": "门限",
    "value": "测量值",
    "result": "结果",
    "pass": "通过",
    "FAIL": "未通过",
    "net speech >= {gate} s": "有效语音 >= {gate} s",
    "SNR >= {gate} dB": "信噪比 >= {gate} dB",
    "clipping <= {gate} %": "削波 <= {gate} %",
    "waveform and spectrogram of {file} with the speech of this voice marked": "{file} 的波形图和语谱图，已标出该说话人的语音",
    "(the recording is not kept under the library, so its waveform is not drawn)": "（声纹库未保存该录音，因此未绘制波形）",
    "speech time ranges": "语音时间段",
    "channel type": "信道类型",
    "The recordings hold several voices, so {n} comparisons were made. The result in section 5 is the pair with the highest "
    "score: a choice among {n} that the calibration does not account for. For an evaluative opinion, choose the voice to compare "
    "(its channel, or a recording cut to that voice) and compare it alone. Every comparison:":
        "录音中含有多个说话人，因此共进行了 {n} 次比对。第 5 节的结果是得分最高的一对：这是从 {n} 对中择优的结果，校准并未考虑这种选择。"
        "如需评价性意见，请选定要比对的说话人（指定其声道，或剪出仅含该说话人的录音）后单独比对。全部比对如下：",
    "A voice": "A 说话人",
    "A speech": "A 语音",
    "B voice": "B 说话人",
    "B speech": "B 语音",
    "4. Method": "4. 检验方法",
    "Software": "软件",
    "Speaker model": "说话人模型",
    "Model fingerprint": "模型指纹",
    "Back end": "后端",
    "Back end file (SHA-256 of backend.json)": "后端文件（backend.json 的 SHA-256）",
    "Calibration data": "校准数据",
    "development/test split: {rule}": "开发集/测试集划分：{rule}",
    "log10 LR bounds (ELUB) per channel pair": "各信道组合的对数似然比 (log10 LR) 界限 (ELUB)",
    "{pair}: {low} to {high}": "{pair}：{low} 至 {high}",
    "5. Result": "5. 检验结果",
    "{file} - channel {channel}, voice {voice} (library of {n} persons)": "{file} - 声道 {channel}，说话人 {voice}（声纹库共 {n} 人）",
    "best-matching enrolled sample": "最匹配的入库样本",
    "(weak voiceprint: {net} s enrolled)": "（声纹较弱：入库有效语音 {net} s）",
    "{file} (voiceprint {voiceprint}, cosine {score})": "{file}（声纹 {voiceprint}，余弦 {score}）",
    "Score": "得分",
    "{score} (cosine {cosine})": "{score}（余弦 {cosine}）",
    "Calibration": "校准",
    "{pair} channel pair; the mean of the log LRs with either recording as the reference (the geometric mean of the two LRs)":
        "{pair}信道组合；分别以两段录音为参照所得对数似然比的均值（即两个似然比的几何平均）",
    "Verbal scale (ENFSI)": "等级表述（ENFSI）",
    "at least": "至少",
    "about": "约",
    "The findings are {more} {times} times more probable if the voices in A and B come from the same speaker than if they "
    "come from different speakers of the relevant population.":
        "在 A 与 B 中的声音来自同一说话人的假设下观察到本检验结果的概率，是在二者来自相关人群中不同说话人的假设下的{more} {times} 倍。",
    "The findings are {more} {times} times more probable if the voices in A and B come from different speakers of the relevant "
    "population than if they come from the same speaker.":
        "在 A 与 B 中的声音来自相关人群中不同说话人的假设下观察到本检验结果的概率，是在二者来自同一说话人的假设下的{more} {times} 倍。",
    "This is a statement about the findings given each proposition, not about how probable either proposition is.":
        "这是对各假设成立时观察到本检验结果的概率的表述，而不是对任一假设本身成立概率的表述。",
    "6. Validation under similar conditions": "6. 相似条件下的验证",
    "development condition": "开发集条件",
    "no back end fitted: no validation figures": "未拟合后端：无验证指标",
    "<b>Tippett plot</b> ({file}, channel {channel}, voice {voice}): {caption}.": "<b>Tippett 图</b>（{file}，声道 {channel}，说话人 {voice}）：{caption}。",
    "Tippett plot": "Tippett 图",
    "<b>Tippett plot:</b> {caption}.": "<b>Tippett 图：</b>{caption}。",
    "{n} development impostor trials, through the {pair} calibration with this case's durations":
        "{n} 次开发集冒认者试验，按本案的语音时长经{pair}校准",
    "; same-speaker curve: pass the development trials with --trials (from `voiceprint evaluate --scores-out`)":
        "；同一说话人曲线：请用 --trials 提供开发集试验（由 `voiceprint evaluate --scores-out` 生成）",
    "development trials from {file}": "开发集试验取自 {file}",
    "no back end is fitted for this model, so no likelihood ratio and no Tippett plot": "该模型未拟合后端，因此无似然比，也无 Tippett 图",
    "7. Limitations": "7. 局限性",
    "A 1:N search result is an <b>investigative lead</b>, not an evaluative opinion: with N enrolled persons, some stranger will "
    "score high by chance (see expected false hits). Before any use in court, obtain reference recordings and have an examiner "
    "carry out an evaluative 1:1 comparison.":
        "1:N 检索结果是<b>侦查线索</b>，不是评价性意见：声纹库中有 N 名入库人员时，总会有无关人员因偶然因素得分较高（见预期误命中数）。"
        "在用于诉讼之前，应提取样本录音，并由鉴定人进行评价性 1:1 比对。",
    "This evaluative comparison is only as good as the relevant population the calibration represents; the likelihood ratio is "
    "bounded at what the development data can support (ELUB bounds above).":
        "本评价性比对的可靠性取决于校准所代表的相关人群；似然比被限制在开发数据所能支持的范围内（见上文 ELUB 界限）。",
    "Language and channel mismatch: the calibration was fitted on Mandarin and English read speech, clean and telephone-coded. "
    "Other languages, dialects, emotional or disguised speech, and channels unlike these (VoIP, loudspeaker, rooms) are not validated.":
        "语言与信道失配：校准基于普通话和英语朗读语音拟合，包括纯净语音和经电话编码的语音。"
        "其他语言、方言、带情绪或伪装的语音，以及与此不同的信道（网络电话、扬声器外放、室内录音）均未经验证。",
    "No spoofing or deepfake check: the system does not detect synthetic, converted or replayed speech.":
        "未做欺骗或深度伪造检测：本系统不能识别合成、变声或翻录的语音。",
    "A recording below a quality gate (section 3) lies at the edge of the validation data. The calibration takes each side's "
    "net speech into account, and LRs of tests under 5 s of speech are bounded by the development trials of their own duration; "
    "still, on held-out speakers tests under 2 s were less reliable than longer ones (section 6, by questioned speech), and a short "
    "recording holds few sounds to compare: seek a longer recording of the speaker before relying on such a result.":
        "未达到质量门限（第 3 节）的录音处于验证数据的边缘。校准已考虑双方的有效语音时长，有效语音不足 5 s 的测试，其似然比还受同等时长开发集"
        "试验的界限约束；但在留出的说话人上，不足 2 s 的测试仍不如更长的测试可靠（第 6 节，按检材净语音），且短录音可供比对的语音内容有限："
        "在依赖此类结果之前，应设法获取该说话人更长的录音。",
    "A value marked &ge; sits at the upper ELUB bound of its calibration: the development data support no stronger value, so the "
    "likelihood ratio is reported as at least that (&le;: at most, at the lower bound).":
        "标有 &ge; 的数值处于其校准的 ELUB 上限：开发数据不支持更强的数值，因此似然比报告为“至少”该值（&le;：位于下限，表示“至多”）。",
    "8. Sign-off": "8. 签署",
    "role": "职责",
    "signature": "签名",
    "Reviewer (second examiner)": "复核人（第二鉴定人）",
    # the figures
    "amplitude": "幅度",
    "frequency (Hz)": "频率 (Hz)",
    "time (s)": "时间 (s)",
    "speech of this voice": "该说话人的语音",
    "waveform and spectrogram (green: speech of this voice)": "波形图与语谱图（绿色：该说话人的语音）",
    "{file} - channel {channel}, voice {voice} (green: this voice's speech)": "{file} - 声道 {channel}，说话人 {voice}（绿色：该说话人的语音）",
    "different speakers (development impostor trials)": "不同说话人（开发集冒认者试验）",
    "same speaker ({n} trials)": "同一说话人（{n} 次试验）",
    "different speakers ({n} trials)": "不同说话人（{n} 次试验）",
    "this case: log10 LR {value}": "本案：log10 LR {value}",
    "log10 likelihood ratio": "对数似然比 (log10 LR)",
    "proportion of trials with log10 LR >= x": "log10 LR >= x 的试验比例",

    # -- the workbench: frame, login, errors -----------------------------------------------------------
    "voiceprint workbench": "voiceprint 声纹工作台",
    "voiceprint <small>workbench</small>": "voiceprint <small>声纹工作台</small>",
    "Query": "比对",
    "Persons": "人员",
    "Cases": "案件",
    "Phones": "电话号码",
    "Enrol": "采集入库",
    "Approvals": "入库审批",
    "Links": "串并案",
    "Leads": "线索",
    "CDR leads": "话单线索",
    "Audit": "审计日志",
    "Log out": "退出登录",
    "Offline workbench - every view of biometric or case data is recorded in the audit trail under your name.":
        "离线工作台——每次查看生物特征或案件数据都会以您的名义记入审计日志。",
    "Log in": "登录",
    "User name": "用户名",
    "Password": "密码",
    "Accounts are created by an administrator with <code>voiceprint user add NAME --role ROLE</code>.":
        "账户由管理员使用 <code>voiceprint user add 用户名 --role 角色</code> 创建。",
    "wrong user name or password": "用户名或密码错误",
    "this account is disabled - ask a supervisor": "该账户已停用——请联系审核员",
    "too many failed logins from this address - wait five minutes": "该地址登录失败次数过多——请等待五分钟",
    "Back": "返回",
    "Start page": "首页",
    "Not allowed": "无权操作",
    "Form refused": "表单被拒绝",
    "Could not do that": "无法完成该操作",
    "Not found": "未找到",
    "less than 3 s of net speech: weak evidence": "有效语音不足 3 s：证据较弱",
    "Upload too large": "上传文件过大",
    "Nothing to do": "没有可执行的操作",
    "Unknown decision": "未知的决定",
    "Unknown language": "不支持的语言",
    "query recordings": "比对录音",
    "open evidence reports": "打开检验报告",
    "listen to recordings": "收听录音",
    "enrol voice samples": "采集入库声纹样本",
    "approve or reject enrolments": "批准或驳回入库申请",
    "see or decide case links": "查看或决定串并案",
    "see CDR leads": "查看话单线索",
    "read the audit trail": "查看审计日志",
    "refused: this form has no valid CSRF token (it expired or did not come from this workbench) - reload the page and try again":
        "已拒绝：该表单没有有效的 CSRF 令牌（已过期或并非来自本工作台）——请刷新页面后重试",
    "choose one or more enrolments and approve or reject them": "请选择一条或多条入库记录，然后批准或驳回",
    "use confirm, split, merge or promote": "请使用确认、拆分、合并或转为人员",
    "choose at least one recording to query": "请至少选择一段录音进行比对",
    "Refused: the upload is larger than the limit of {mb} MB. Nothing was stored. Cut the recording to the part you need, or ask the "
    "administrator to raise <code>--max-upload-mb</code>.":
        "已拒绝：上传文件超过 {mb} MB 的上限，未存储任何内容。请截取所需的录音片段，或请管理员调高 <code>--max-upload-mb</code>。",
    "choose the recording(s) to enrol": "请选择要采集入库的录音",
    "enter who is speaking (the person's name), or upload a manifest": "请填写说话人（人员姓名），或上传清单",

    # -- query and results -----------------------------------------------------------------------------
    "Query unknown recordings": "比对未知录音",
    "Recordings (WAV, FLAC, MP3, M4A, OGG/Opus, AMR, G.711 - checked by decoding)": "录音（WAV、FLAC、MP3、M4A、OGG/Opus、AMR、G.711——以解码检验格式）",
    "Hits per voice": "每个说话人的命中数",
    "Search the library": "在声纹库中比对",
    "Uploading…": "正在上传…",
    "Decoding, finding speech and searching the library…": "正在解码、检测语音并在声纹库中比对…",
    "Each voice in each recording (a channel of a stereo call, or a speaker of a mono call) is searched separately. "
    "Results are <b>investigative leads</b>, not identifications.":
        "每段录音中的每个说话人（立体声通话的一个声道，或经说话人分离得到的单声道通话中的一个说话人）分别比对。结果是<b>侦查线索</b>，不是身份认定。",
    "Result {rid}": "结果 {rid}",
    "Evidence report (HTML)": "检验报告（HTML）",
    "Evidence report (PDF)": "检验报告（PDF）",
    "Request (optional): who asked for the examination, printed at the top of the report": "委托信息（选填）：由谁委托检验，印在报告首部",
    "Report refused": "报告未生成",
    "Field '{field}': {problem}": "“{field}”栏：{problem}",
    "{net} s of speech": "有效语音 {net} s",
    "library of {n} persons": "声纹库共 {n} 人",
    "best sample": "最佳样本",
    "pooled enrolled speech {net} s, below the gate": "累计入库有效语音 {net} s，低于门限",
    "(weak voiceprint)": "（声纹较弱）",
    "n/a (no back end)": "不适用（无后端）",
    "(cosine {score})": "（余弦 {score}）",
    "best-matching enrolled sample of {name}": "{name} 最匹配的入库样本",
    "audio not kept (enrolled from the command line)": "未保存音频（通过命令行入库）",
    "no enrolled person in the library": "声纹库中没有已入库人员",
    "waveform and spectrogram of {file}, channel {channel}, with the speech of voice {voice} marked":
        "{file} 声道 {channel} 的波形图和语谱图，已标出说话人 {voice} 的语音",
    "Waveform and spectrogram; green: where this voice speaks ({n} ranges).": "波形图和语谱图；绿色：该说话人说话的时段（共 {n} 段）。",
    "Queried recording": "待比对录音",
    "queried recording {file}": "待比对录音 {file}",

    # -- persons, cases, phones ------------------------------------------------------------------------
    "ID number": "身份证号",
    "notes": "备注",
    "{net} s net speech pooled": "累计有效语音 {net} s",
    "weak voiceprint": "声纹较弱",
    "enrol {needs}": "需{needs}",
    "Voice samples": "声纹样本",
    "codec": "编解码器",
    "listen": "收听",
    "(your role cannot listen)": "（您的角色无权收听）",
    "(audio not kept)": "（未保存音频）",
    "no voice sample": "无声纹样本",
    "person {id}": "人员 {id}",
    "Search by name, ID number or phone": "按姓名、身份证号或电话号码搜索",
    "Search": "搜索",
    "{n} person(s)": "共 {n} 人",
    ", first {n} shown": "，显示前 {n} 人",
    "voice samples": "声纹样本数",
    "no person matches": "没有匹配的人员",
    "Search by case number, title or area": "按案件编号、案件名称或地区搜索",
    "title": "案件名称",
    "area": "地区",
    "recordings": "录音数",
    "no case matches": "没有匹配的案件",
    "Case {number}": "案件 {number}",
    "none linked": "无关联",
    "Recordings filed with the case": "涉案录音",
    "matched person (when filed)": "匹配人员（归档时）",
    "Open a case": "新建案件",
    "matched to a person": "已匹配到人员",
    "voice heard in a recording of this case": "其声音出现在本案录音中",
    "already filed": "此前已归档",
    "Open the case": "新建",
    "Filed": "归档结果",
    "File recordings with this case": "将录音归入本案",
    "Recording(s): each voice is matched to the library or kept as an unknown voice": "录音（每个说话人与声纹库比对，未命中的作为未知声音保存）",
    "File": "归档",
    "choose the recording(s) to file with the case": "请选择要归入本案的录音",
    "open cases or file their recordings": "新建案件或归档其录音",
    "best hit in today's library": "当前声纹库中的最佳命中",
    "cosine": "余弦相似度",
    "none (file them with <code>voiceprint case add-recording</code>)": "无（用 <code>voiceprint case add-recording</code> 归档）",
    "the reverse strike: phone &rarr; person &rarr; cases &rarr; voice samples": "反向追查：电话号码 &rarr; 人员 &rarr; 案件 &rarr; 声纹样本",
    "Search by number (any part)": "按号码搜索（可输入任意部分）",
    "registered person": "登记人员",
    "no phone matches": "没有匹配的电话号码",
    "Phone {number}": "电话号码 {number}",
    "phone <b>{number}</b>": "电话号码 <b>{number}</b>",
    "{n} case(s)": "{n} 起案件",
    "{n} voice sample(s)": "{n} 个声纹样本",
    "no registered person in the library": "声纹库中没有登记人员",
    "Cases this phone is linked to": "该号码关联的案件",
    "Calls this number made to case victims": "该号码拨打案件受害人的通话",
    "called at": "通话时间",
    "victim's number": "受害人号码",
    "calls to case victims": "拨打受害人",
    "Registered person": "登记人员",

    # -- enrolment and approvals -----------------------------------------------------------------------
    "Enrol voice samples": "声纹采集入库",
    "Four-eyes enrolment is on: a new voice sample is stored but <b>not searchable</b> until a supervisor other than you approves it.":
        "已启用双人复核入库：新的声纹样本会被保存，但在另一名审核员批准之前<b>不可比对</b>。",
    "Outcome": "入库结果",
    "reason / warnings": "原因 / 警告",
    "weak voiceprint:": "声纹较弱：",
    "One person": "单个人员",
    "Recording(s) of this person": "该人员的录音",
    "Name": "姓名",
    "Category": "类别",
    "Phone": "电话号码",
    "Case number": "案件编号",
    "Channel of a stereo recording (blank: the only voice)": "立体声录音的声道（留空：唯一的说话人）",
    "Notes": "备注",
    "A manifest": "批量清单",
    "Manifest CSV (path,person,category,phone,case[,id_number,channel,notes])": "清单 CSV（path,person,category,phone,case[,id_number,channel,notes]）",
    "The recordings it names": "清单中列出的录音",
    "Enrol the manifest": "按清单采集入库",
    "The <code>path</code> column is matched to the uploaded files by name.": "<code>path</code> 列按文件名与上传的文件对应。",
    "Waiting for approval": "待批准",
    "{n} enrolment(s) to review": "{n} 条入库记录待审核",
    "Enrolments waiting for approval": "待批准的入库记录",
    "select": "选择",
    "enrolled by": "入库人",
    "select voiceprint {id}": "选择声纹 {id}",
    "you enrolled it: another supervisor approves": "该记录由您入库：须由另一名审核员批准",
    "(not kept)": "（未保存）",
    "Note (optional)": "备注（可选）",
    "Approve selected": "批准所选",
    "Reject selected": "驳回所选",
    "Nothing is waiting for approval.": "没有待批准的入库记录。",

    # -- audit -----------------------------------------------------------------------------------------
    "Audit trail": "审计日志",
    "Chain verified: {rows} rows, head row {id}": "哈希链校验通过：共 {rows} 行，链头为第 {id} 行",
    "CHAIN BROKEN at row {id} ({action}): {problem}": "哈希链在第 {id} 行（{action}）断裂：{problem}",
    "Action starts with": "操作前缀",
    "Operator": "操作人",
    "Since": "起始日期",
    "Filter": "筛选",
    "Export CSV": "导出 CSV",
    "detail": "详情",
    "hash": "哈希",

    # -- links and leads -------------------------------------------------------------------------------
    "unknown voices heard in several cases": "在多个案件中出现的未知声音",
    "Cluster {n}": "聚类 {n}",
    "split out": "拆分",
    "{unit} to others": "与其他声音的{unit}",
    "split voiceprint {id}": "拆分声纹 {id}",
    "Split the ticked voices out": "拆分勾选的声音",
    "Confirm: one person": "确认：同一人",
    "Closest other voice: cluster {n} (cases {cases}), {unit} {score}; linking needs {threshold}":
        "最相近的其他声音：聚类 {n}（案件 {cases}），{unit} {score}；串并需要 {threshold}",
    "Cluster to merge into this one": "并入本聚类的聚类编号",
    "also voices split apart": "包括曾被拆分的声音",
    "Merge: one voice": "合并：同一声音",
    "Decisions": "决定",
    "Note": "备注",
    "each is audited with your name and note": "每项决定连同您的姓名和备注记入审计",
    "Which cluster?": "哪个聚类？",
    "give the number of the cluster to merge into this one": "请填写要并入本聚类的聚类编号",
    "Name for the new suspect": "新嫌疑人的姓名",
    "Promote to a person": "转为人员",
    "No unknown voice appears in more than one case. File case recordings with <code>voiceprint case add-recording</code>.":
        "没有在多个案件中出现的未知声音。请用 <code>voiceprint case add-recording</code> 归档涉案录音。",
    "no leads file loaded": "未加载线索文件",
    "Start the server with <code>voiceprint serve --leads leads.json</code>, where <code>leads.json</code> comes from "
    "<code>voiceprint calls leads ... --out leads.json</code>.":
        "请用 <code>voiceprint serve --leads leads.json</code> 启动服务，其中 <code>leads.json</code> "
        "由 <code>voiceprint calls leads ... --out leads.json</code> 生成。",
    "flagged": "已标记",
    "reasons": "原因",
    "library person": "声纹库人员",
    "no leads": "无线索",
    "persons, numbers and unknown voices tied to open cases by voice and calling evidence": "通过声纹和通话证据与在办案件关联的人员、号码和未知声音",
    "Built by <code>voiceprint leads</code> from the library, the case file and the CDRs; run it again to refresh the lead graph. "
    "Score: log10 posterior odds in the lead's best case (equal priors over that case's candidates and anyone else); LR: the "
    "combined log10 likelihood ratio there.":
        "由 <code>voiceprint leads</code> 根据声纹库、案卷和话单生成；重新运行即可刷新线索图。"
        "得分：该线索在其最相关案件中的 log10 后验几率（该案所有候选人及其他任何人的先验概率相等）；LR：该案中合并后的对数似然比 (log10 LR)。",
    "lead": "线索",
    "probability": "概率",
    "sources": "来源",
    "chart": "关系图",
    "link chart": "关系图",
    "no leads - run <code>voiceprint leads --calls ... --features ... --registry ...</code> first":
        "无线索——请先运行 <code>voiceprint leads --calls ... --features ... --registry ...</code>",
    "Link chart: {label}": "关系图：{label}",
    "Link chart": "关系图",
    "lead {rank}: {label}": "线索 {rank}：{label}",
    "link chart of lead {rank}": "线索 {rank} 的关系图",
    "Click a node or an edge to see its evidence; double-click a node to open its page. Drag to rearrange, scroll to zoom.":
        "单击节点或连线查看其证据；双击节点打开其页面。拖动可调整布局，滚轮可缩放。",
    "registry person": "实名登记人员",
    "case voice": "涉案声音",
    "handset": "手机终端",
    "all leads": "全部线索",
    # the link chart's evidence pane and its nodes and edges (voiceprint.web.chart, static/leadchart.js)
    "kind": "类型",
    "lead rank": "线索排名",
    "log10 LR in this case": "本案中的 log10 LR",
    "probability among the case's candidates": "在本案候选人中的概率",
    "evidence terms": "各项证据",
    "calling screen: log10 LR": "话单筛查：log10 LR",
    "calling screen: score": "话单筛查：评分",
    "calling screen: reasons": "话单筛查：原因",
    "explanation": "说明",
    "from (an edge's start)": "起点",
    "to (an edge's end)": "终点",
    "in cases": "所在案件",
    "open (a page)": "打开",
    "another lead": "另一条线索",
    "called victim": "呼叫受害人",
    "cdr score": "话单评分",
    "registered to": "登记于",
    "heard in": "出现于",
    "matches": "声纹相符",
    "member of": "属于",
    "uses handset": "使用手机",
    "shares contacts": "共同联系人",
    "also tied": "同时关联",
    "screen": "筛查",
    "voice {id}": "声音 {id}",
    "unknown voice {id}": "未知声音 {id}",
    "handset {id}": "手机 {id}",
    # the rule score's signals (voiceprint.calls.scoring.SIGNALS), named in each CDR lead's reasons
    "mostly outgoing calls": "以主叫为主",
    "few repeat contacts": "重复联系人少",
    "many distinct counter-parties": "通话对象多",
    "active on few days": "活跃天数少",
    "calls in a narrow band of hours": "通话集中在少数时段",
    "calls from one place": "通话地点单一",
    "several handsets": "使用多部手机",
    "handset shared by several numbers": "一部手机被多个号码使用",
    "several numbers on one ID card": "同一身份证登记多个号码",
    "few two-way contacts": "双向联系少",
    "counter-parties rarely called twice": "通话对象很少被再次拨打",
    "bursts of distinct callees in a day": "单日内集中拨打大量不同号码",
    "many distinct callees per 6-hour window": "每 6 小时拨打的不同号码多",
    "calls in office hours": "通话集中在工作时间",
    "callees far away": "被叫多在外地",
    "contacts shared with known fraud numbers": "与已知诈骗号码有共同联系人",
    "in a community with known fraud numbers": "与已知诈骗号码同属一个通话群体",
    "SMS mass sending": "群发短信",
    "little SMS traffic (a calling-only handset)": "短信很少（专用于拨打电话的手机）",
    "few apps used (a calling-only handset)": "使用的应用很少（专用于拨打电话的手机）",
}


#: Messages the library (or the workbench, before it knows the page's language) writes out finished, in English:
#: a result's warnings, the verbal scale, an error. Their templates are matched against the finished text
#: (voiceprint.i18n); the templates of MESSAGES are only ever filled in by the code that shows them.
GENERATED: dict[str, str] = {
    # quality warnings and notes (voiceprint.quality, search, scoring)
    "only {net} s of net speech (gate {gate} s)": "有效语音仅 {net} s（门限 {gate} s）",
    "SNR {snr} dB (gate {gate} dB)": "信噪比 {snr} dB（门限 {gate} dB）",
    "{percent} % of samples clipped (gate {gate} %)": "{percent} % 的采样点削波（门限 {gate} %）",
    "weak query: {problem}": "待比对录音质量不足：{problem}",
    "weak recording: {problem}": "录音质量不足：{problem}",
    "{more} s more net speech (pooled {pooled} s, gate {gate} s)": "再采集 {more} s 有效语音（已累计 {pooled} s，门限 {gate} s）",
    "the questioned recording is itself enrolled as a sample of person {id} ({name}; same SHA-256): its match compares "
    "the file with itself, not two recordings of one voice":
        "待检录音本身已作为人员 {id}（{name}；SHA-256 相同）的样本入库：该命中是文件与其自身的比对，而不是同一声音的两段录音的比对",
    "waiting for a second person's approval (four-eyes): not searchable until `voiceprint approve`":
        "等待另一人批准（双人复核）：在 `voiceprint approve` 之前不可比对",
    # an unusable recording, as voiceprint.audio refuses it ("{file}: {reason} - {hint}")
    "{file}: file not found - check the path and the spelling of the file name": "{file}：文件不存在——请检查路径和文件名的拼写",
    "{file}: is a folder, not an audio file - give the path of one recording": "{file}：这是一个文件夹，不是音频文件——请给出一段录音的路径",
    "{file}: file is empty (0 bytes) - the copy failed or the recording was never saved - copy the original again":
        "{file}：文件为空（0 字节）——复制失败或录音从未保存——请重新复制原始文件",
    "{file}: not a readable audio file (corrupt, truncated or unsupported format: {detail}) - convert it to WAV or FLAC "
    "(e.g. with ffmpeg or Audacity) and try again; if it is a copy, copy the original again":
        "{file}：不是可读取的音频文件（已损坏、被截断或格式不受支持：{detail}）——请转换为 WAV 或 FLAC（例如用 ffmpeg 或 Audacity）"
        "后重试；如为副本，请重新复制原始文件",
    "{file}: {kind} file is truncated ({detail}) - the copy is incomplete - copy the original file again (or ask the sender for "
    "the whole recording)": "{file}：{kind} 文件不完整（{detail}）——副本不完整——请重新复制原始文件（或向提供方索取完整录音）",
    "{file}: is digital silence (peak {peak} dBFS over {seconds} s) - the recording holds no sound - check the recorder or pick the "
    "right channel": "{file}：数字静音（{seconds} s 内峰值 {peak} dBFS）——录音中没有声音——请检查录音设备或选择正确的声道",
    "{file}: recording is too long (more than {hours} h; limit {limit} s) - cut it into shorter pieces (e.g. one call per file) "
    "and load those": "{file}：录音过长（超过 {hours} 小时；上限 {limit} s）——请切分为较短的片段（例如每个文件一次通话）后再载入",
    "{file}: no speech found (need at least {need} s) - use a longer recording (for enrolment, `enrol --min-speech` lowers this "
    "floor)": "{file}：未检测到语音（至少需要 {need} s）——请使用更长的录音（采集入库时可用 `enrol --min-speech` 降低该下限）",
    "{file}: no speech found (need at least {need} s; channel {channel}) - use a longer recording (for enrolment, `enrol "
    "--min-speech` lowers this floor)": "{file}：未检测到语音（至少需要 {need} s；声道 {channel}）——请使用更长的录音（采集入库时可用 "
                                        "`enrol --min-speech` 降低该下限）",
    "{file}: only {net} s of speech (need at least {need} s) - use a longer recording (for enrolment, `enrol --min-speech` lowers "
    "this floor)": "{file}：语音仅 {net} s（至少需要 {need} s）——请使用更长的录音（采集入库时可用 `enrol --min-speech` 降低该下限）",
    "{file}: only {net} s of speech (need at least {need} s; channel {channel}) - use a longer recording (for enrolment, `enrol "
    "--min-speech` lowers this floor)": "{file}：语音仅 {net} s（至少需要 {need} s；声道 {channel}）——请使用更长的录音（采集入库时可用 "
                                        "`enrol --min-speech` 降低该下限）",
    # enrolment refusals (voiceprint.enrolment)
    "{file}: holds {n} voices (found by diarisation) - enrol one of them with --voice N (0-based; `voiceprint query` shows who "
    "speaks when)": "{file}：含有 {n} 个声音（说话人分离识别）——请用 --voice N（从 0 起）只采集其中一个（`voiceprint query` 显示谁在何时说话）",
    "{file}: holds {n} voices (one per channel) - enrol one of them with --channel N (0-based; `voiceprint query` shows who "
    "speaks when)": "{file}：含有 {n} 个声音（每个声道一个）——请用 --channel N（从 0 起）只采集其中一个（`voiceprint query` 显示谁在何时说话）",
    "{file}: holds {n} voice(s), voice {voice} does not exist - use --voice 0 to {last} (see `voiceprint query` for who speaks when)":
        "{file}：含有 {n} 个声音，不存在声音 {voice}——请使用 --voice 0 到 {last}（`voiceprint query` 显示谁在何时说话）",
    "{file}: this voice of this recording is already enrolled for person {other} (voiceprint {vid}) - one voice cannot be two "
    "people's: correct the name in the manifest, or, if person {other} is the mistake, delete them (`voiceprint person delete "
    "{other}` erases that person with all their samples) and enrol again":
        "{file}：该录音中的这个声音已作为人员 {other}（声纹 {vid}）入库——同一个声音不能属于两个人：请更正清单中的姓名；如果人员 {other} "
        "有误，请删除该人员（`voiceprint person delete {other}` 会删除该人员及其全部样本）后重新采集",
    "{file}: phone {number} is registered to person {owner}; in a four-eyes library an enrolment does not move it - enrol without "
    "--phone, and after approval move the number with `voiceprint phone add NUMBER --person ...`":
        "{file}：电话号码 {number} 登记在人员 {owner} 名下；在双人复核的声纹库中，采集入库不会改登记该号码——请不带 --phone 采集，"
        "批准后再用 `voiceprint phone add NUMBER --person ...` 改登记该号码",
    # cases (voiceprint.store, voiceprint.web.views)
    "case {case} already exists - open it from the list, or choose another number": "案件 {case} 已存在——请从列表中打开，或换一个编号",
    "a case needs a case number": "案件需要案件编号",
    "no case '{case}' - add it first with `voiceprint case add`": "没有案件 '{case}'——请先新建该案件（`voiceprint case add`，或在“案件”页面新建）",
    # enrolment notes (voiceprint.enrolment)
    "phone {number} was registered to person {owner}: it is now this person's": "电话号码 {number} 原登记在人员 {owner} 名下：现改登记到此人名下",
    "this voice is all but identical to voiceprint {vid} of person {owner} (cosine {cosine}): the same recording under two names? "
    "- check which is right (`voiceprint person show {owner}`)":
        "该声音与人员 {owner} 的声纹 {vid} 几乎完全相同（余弦 {cosine}）：是否同一段录音登记在两个名字下？——请核实哪个正确"
        "（`voiceprint person show {owner}`）",
    "case {case} was not in the library: it was opened (check the number if you meant an existing case)":
        "案件 {case} 不在声纹库中：已新建该案件（如本意是已有案件，请核对案件编号）",
    # the ENFSI verbal scale (voiceprint.scoring.verbal)
    "extremely strong support for same speaker": "极强支持同一说话人假设",
    "very strong support for same speaker": "很强支持同一说话人假设",
    "strong support for same speaker": "强支持同一说话人假设",
    "moderately strong support for same speaker": "中等偏强支持同一说话人假设",
    "moderate support for same speaker": "中等支持同一说话人假设",
    "weak support for same speaker": "弱支持同一说话人假设",
    "extremely strong support for different speakers": "极强支持不同说话人假设",
    "very strong support for different speakers": "很强支持不同说话人假设",
    "strong support for different speakers": "强支持不同说话人假设",
    "moderately strong support for different speakers": "中等偏强支持不同说话人假设",
    "moderate support for different speakers": "中等支持不同说话人假设",
    "weak support for different speakers": "弱支持不同说话人假设",
    "no appreciable support for either proposition": "对两个假设均无明显支持",
    # what the score is (voiceprint.scoring.scoring_note, Backend.score_meaning, Backend.calibration_data)
    "score = {meaning} (cosine = raw cosine); llr = natural-log likelihood ratio calibrated on development speakers ({fitted})":
        "得分 = {meaning}（cosine = 原始余弦相似度）；llr = 在开发集说话人上校准的自然对数似然比（{fitted}）",
    "score = raw cosine; no back end is fitted for this model, so llr, verbal and expected_false_hits are null "
    "(fit one with `voiceprint backend fit`)":
        "得分 = 原始余弦相似度；该模型未拟合后端，因此 llr、等级表述和预期误命中数为空（用 `voiceprint backend fit` 拟合）",
    "AS-norm of the cosine after domain centring and within-speaker whitening": "域中心化和说话人内白化之后余弦相似度的 AS-norm 归一化值",
    "the cosine after domain centring and within-speaker whitening (no AS-norm)": "域中心化和说话人内白化之后的余弦相似度（未做 AS-norm）",
    "{n} recordings of {speakers} development speakers ({corpora})": "{speakers} 名开发集说话人的 {n} 段录音（{corpora}）",
    "{n} recordings of {speakers} development speakers ({corpora}); AS-norm cohort: {cohort}":
        "{speakers} 名开发集说话人的 {n} 段录音（{corpora}）；AS-norm 参照集：{cohort}",
    "development speakers": "开发集说话人",
    "voiceprint.evaluate.split_of: sha256(speaker id)[0] < 128 -> dev":
        "voiceprint.evaluate.split_of：说话人编号的 SHA-256 首字节小于 128 者为开发集说话人，其余为测试集说话人",
    "none (raw cosine, no likelihood ratio)": "无（原始余弦相似度，无似然比）",
    # the software's version (voiceprint.evidence.software_commit)
    "{commit} (with local changes to the code or models)": "{commit}（代码或模型有本地改动）",
    "not a git checkout": "非 git 检出版本",
    # a CDR lead's reasons (voiceprint.calls.scoring.rule_reasons; voiceprint.calls.leads.score_table with a model)
    "{meaning}: {feature}={value} (population median {median}; typical of fraud {fraud}, of normal use {normal})":
        "{meaning}：{feature}={value}（总体中位数 {median}；诈骗号码典型值 {fraud}，正常号码典型值 {normal}）",
    "{meaning}: {feature}={value} (population median {median}; typical of fraud {fraud}, of normal use {normal}, moderate)":
        "{meaning}：{feature}={value}（总体中位数 {median}；诈骗号码典型值 {fraud}，正常号码典型值 {normal}；中等）",
    "{feature}={value} (population median {median}, +{odds} log-odds)": "{feature}={value}（总体中位数 {median}，对数几率 +{odds}）",
    # a fused lead's explanation, part by part (voiceprint.fused: explanation_parts)
    "{label}: log10 LR {lr} on case {case} from {sources} (log10 posterior odds {odds})":
        "{label}：案件 {case} 中 log10 LR {lr}，证据来源 {sources}（log10 后验几率 {odds}）",
    "number {number}: log10 LR {lr} on case {case} from {sources} (log10 posterior odds {odds})":
        "号码 {number}：案件 {case} 中 log10 LR {lr}，证据来源 {sources}（log10 后验几率 {odds}）",
    "unknown voice (cluster {cluster}): log10 LR {lr} on case {case} from {sources} (log10 posterior odds {odds})":
        "未知声音（聚类 {cluster}）：案件 {case} 中 log10 LR {lr}，证据来源 {sources}（log10 后验几率 {odds}）",
    "also tied to {cases}": "同时关联案件 {cases}",
    "number {number}": "号码 {number}",
    "unknown voice (cluster {cluster})": "未知声音（聚类 {cluster}）",
    "number {number} called the victim of case {case} ({when})": "号码 {number} 曾呼叫案件 {case} 的受害人（{when}）",
    "number {number} called the victim of case {case} (time not recorded)": "号码 {number} 曾呼叫案件 {case} 的受害人（时间未记录）",
    "the calling screen scores it {score} ({reason}) - log10 LR {lr}": "话单筛查评分 {score}（{reason}）——log10 LR {lr}",
    "the calling screen scores it {score} ({reason} | {also}) - log10 LR {lr}": "话单筛查评分 {score}（{reason}；{also}）——log10 LR {lr}",
    "no signal stands out": "无突出信号",
    "it is not in the screened CDRs (no calling evidence either way)": "该号码不在已筛查的话单中（无任何方向的通话证据）",
    "nobody is registered to this number": "该号码无实名登记人",
    "it is registered to {name}": "该号码登记在 {name} 名下",
    "it shares {shared} rare contacts with number {number} (a calling community), registered to {name} ({persons} persons in "
    "that community: log10 {hop})":
        "与号码 {number} 有 {shared} 个共同的少见联系人（同一通话群体），该号码登记在 {name} 名下（该群体共 {persons} 人：log10 {hop}）",
    "it shares handset {handset} with number {number}, registered to {name} ({persons} persons on that handset: log10 {hop})":
        "与号码 {number} 共用手机 {handset}，该号码登记在 {name} 名下（该手机上共 {persons} 人：log10 {hop}）",
    "the voice heard in case {case} ({file} (channel {channel}, voice {voice})) matches {name}'s enrolled voice at log10 LR "
    "{lr} ({verbal})":
        "案件 {case} 中听到的声音（{file}，声道 {channel}，声音 {voice}）与 {name} 的入库声纹相符，log10 LR {lr}（{verbal}）",
    "an unknown voice heard in case {case} ({file} (channel {channel}, voice {voice})) is cluster {cluster}":
        "案件 {case} 中听到的未知声音（{file}，声道 {channel}，声音 {voice}）属于聚类 {cluster}",
    "probability {p} among {n} candidate(s) of case {case} and anyone else": "在案件 {case} 的 {n} 名候选人及其他任何人中，概率为 {p}",
    "the strongest rival is {name} (log10 LR {lr})": "最强的竞争候选人是 {name}（log10 LR {lr}）",
    "the strongest rival is number {number} (log10 LR {lr})": "最强的竞争候选人是号码 {number}（log10 LR {lr}）",
    "the strongest rival is an unknown voice (cluster {cluster}) (log10 LR {lr})": "最强的竞争候选人是未知声音（聚类 {cluster}）（log10 LR {lr}）",
    # the links page (voiceprint.linking)
    "this voice appears in cases {cases}": "该声音出现在以下案件中：{cases}",
    "this voice appears in cases {cases} and {last}": "该声音出现在以下案件中：{cases} 和 {last}",
    "Mean pair {unit} {mean}, lowest {low}": "两两之间{unit}的均值为 {mean}，最低为 {low}",
    "One voice": "仅一个声音",
    "cosine score": "余弦得分",

    # the workbench's own messages, built before the page's language is known (voiceprint.web)
    "too many failed logins - try again in {seconds} s": "登录失败次数过多——请在 {seconds} s 后重试",
    "unknown language {value} - use one of {choices}": "不支持的语言 {value}——请使用以下之一：{choices}",
    "your role ({role}) cannot {what} - ask a supervisor for a role that can": "您的角色（{role}）无权{what}——请向审核员申请具备该权限的角色",
    "Refused: {reason} Nothing was stored.": "已拒绝：{reason}。未存储任何内容。",
    "no such page - use the workbench's menu and links": "没有这个页面——请使用工作台的菜单和链接",
    "this address does not take that kind of request - use the page's buttons and links": "该地址不接受这种请求——请使用页面上的按钮和链接",
    "the request is not valid - use the page's forms and links": "请求无效——请使用页面上的表单和链接",
    "Refused: the upload is larger than the limit of {mb} MB. Nothing was stored. Cut the recording to the part you need, or ask "
    "the administrator to raise `--max-upload-mb`.":
        "已拒绝：上传文件超过 {mb} MB 的上限，未存储任何内容。请只截取需要的部分，或请管理员调高 `--max-upload-mb`。",
    "no report format '{fmt}' - a report is html or pdf": "没有 '{fmt}' 格式的报告——报告只有 html 和 pdf 两种格式",
    # a full, read-only or failing disk under the library (voiceprint.web.app.disk_refusal)
    "Stopped: no space left on the disk under the library. Nothing half-written was kept. Ask the administrator to free space, then "
    "send it again.": "已中止：声纹库所在磁盘空间已满。未保留任何写了一半的内容。请管理员释放空间后重新提交。",
    "Refused: the disk under the library is read-only. Nothing half-written was kept. Ask the administrator to make it writable, then "
    "send it again.": "已拒绝：声纹库所在磁盘为只读。未保留任何写了一半的内容。请管理员将其改为可写后重新提交。",
    "Stopped: the library's files could not be written. Nothing half-written was kept. Ask the administrator to read the server log.":
        "已中止：无法写入声纹库的文件。未保留任何写了一半的内容。请管理员查看服务器日志。",
    # what the library refuses on the workbench's pages and forms (voiceprint.store, linking, enrolment, web.views)
    "no person '{person}' in the library - give a person id, ID number or unique name (see `voiceprint person list`)":
        "声纹库中没有人员 '{person}'——请给出人员编号、身份证号或唯一姓名（见 `voiceprint person list`）",
    "no person '{person}'": "没有人员 '{person}'",
    "no phone '{number}' in the library: neither registered to a person nor a case's calling number":
        "声纹库中没有电话号码 '{number}'：既未登记到人员，也不是任何案件的主叫号码",
    "no such recording under the library": "声纹库中没有该录音",
    "no saved result '{rid}' - the id is printed by `voiceprint report` and shown on the query page":
        "没有已保存的结果 '{rid}'——结果编号由 `voiceprint report` 输出，并显示在比对页面上",
    "result {rid} has no voice {n}": "结果 {rid} 中没有声音 {n}",
    "no lead '{key}' - the leads are those of `voiceprint leads` (see the Leads page)": "没有线索 '{key}'——线索来自 `voiceprint leads`（见“线索”页面）",
    "since='{since}' is not a date - use YYYY-MM-DD": "起始日期 '{since}' 不是日期——请使用 YYYY-MM-DD 格式",
    "case {case}: date '{date}' is not a day - give it as YYYY-MM-DD (e.g. 2026-08-15)":
        "案件 {case}：日期 '{date}' 不是有效日期——请写成 YYYY-MM-DD（例如 2026-08-15）",
    "case {case}: status '{status}' is not one of {statuses}": "案件 {case}：状态 '{status}' 不是以下之一：{statuses}",
    "'{number}' is not a case number - at most {max} characters, no control characters, no '.' or '..' between slashes":
        "'{number}' 不是有效的案件编号——最多 {max} 个字符，不含控制字符，斜杠之间不能是 '.' 或 '..'",
    "no voice cluster {cluster} - see `voiceprint link`": "没有声音聚类 {cluster}——请查看 `voiceprint link`",
    "voiceprint(s) {ids} are not in cluster {cluster} - see `voiceprint link --json`": "声纹 {ids} 不在聚类 {cluster} 中——请查看 `voiceprint link --json`",
    "splitting every voice out of a cluster changes nothing - name only the voices that do not belong":
        "把聚类中的全部声音都拆分出去不会改变任何东西——只勾选不属于该聚类的声音",
    "a person needs a name": "人员需要姓名",
    "unknown category '{category}' - use one of: {categories}": "未知的人员类别 '{category}'——请使用以下之一：{categories}",
    "'{number}' is not a phone number": "'{number}' 不是电话号码",
    "'{number}' is not a Chinese mobile number (11 digits): check it": "'{number}' 不是中国手机号码（11 位）：请核对",
    "{file}: manifest lacks column(s) {missing} (it has {cols}) - expected path,person,category,phone,case":
        "{file}：清单缺少列 {missing}（现有列：{cols}）——应为 path,person,category,phone,case",
    "{file}: manifest lacks column(s) {missing} - expected path,person,category,phone,case":
        "{file}：清单缺少列 {missing}——应为 path,person,category,phone,case",
    "{file}:{line}: empty path or person - fix or delete that row": "{file}:{line}：path 或 person 为空——请修正或删除该行",
    "{file}: the manifest has a header but no rows - one row per recording: path,person,...": "{file}：清单只有表头没有数据行——每段录音一行：path,person,...",
    "manifest row for '{name}': that file was not uploaded with the manifest - select it too":
        "清单中 '{name}' 这一行：该文件没有与清单一起上传——请一并选择该文件",
    "voiceprint {vid} is not waiting for approval - see `voiceprint approve --list`": "声纹 {vid} 不在待批准状态——请查看 `voiceprint approve --list`",
    "voiceprint {vid} was enrolled by {name}; four eyes means another supervisor approves it":
        "声纹 {vid} 由 {name} 采集入库；双人复核要求由另一名审核员批准",
    "internal error ({kind}) - the server log has the details": "内部错误（{kind}）——详情见服务器日志",
    # a refused request field of the evidence report (voiceprint.evidence.examination_request)
    "too long ({n} characters) - type at most {max} characters": "过长（{n} 个字符）——最多填写 {max} 个字符",
    "holds a control or invisible character (U+{code}) - type plain text on one line": "含有控制字符或不可见字符（U+{code}）——请填写单行纯文本",
    "'{value}' is not a date - type the day the items were received as YYYY-MM-DD (e.g. 2026-08-15)":
        "'{value}' 不是日期——请按 YYYY-MM-DD 填写检材受理日期（例如 2026-08-15）",
    "{day} is in the future - type the day the items were received as YYYY-MM-DD, {today} or earlier":
        "{day} 是将来的日期——请按 YYYY-MM-DD 填写检材受理日期，不晚于 {today}",
}

#: The audit trail's action codes, glossed beside the code (the audit page, a report's chain of custody); the code
#: stays as the trail stores it: `voiceprint audit verify` checks the code, not the gloss.
AUDIT_ACTIONS: dict[str, str] = {
    "upload": "上传", "library.backup": "声纹库备份", "library.settings": "声纹库设置",
    "query": "检索", "query.failed": "检索失败", "verify": "1:1 比对", "screen": "筛查",
    "enrol": "采集入库", "enrol.refused": "采集入库被拒", "enrol.pending": "采集入库待批准", "enrol.approve": "批准入库",
    "enrol.reject": "驳回入库", "case.add_recording": "录音归入案件", "audio.play": "播放录音", "result.save": "保存结果",
    "result.view": "查看结果", "result.figure": "查看波形图", "report": "出具报告", "library.reembed": "声纹库换模型重提取",
    "enrol.review_refused": "批准或驳回被拒", "library.reembed.batch": "换模型重提取（一批）", "library.create": "新建声纹库", "index.rebuild": "重建索引",
    "integrity.seal": "完整性封签", "integrity.reseal": "完整性重新封签", "four_eyes.on": "启用双人复核",
    "person.add": "新增人员", "person.update": "修改人员", "person.delete": "删除人员", "person.view": "查看人员",
    "person.search": "查询人员", "person.retention": "设置保存期限", "person.erase_copies": "从备份副本中删除人员",
    "phone.add": "新增电话号码", "phone.assign": "登记电话号码", "phone.view": "查看电话号码", "phone.search": "查询电话号码",
    "phones_unassigned": "注销电话号码登记",
    "case.add": "新建案件", "case.add_call": "案件新增通话", "case.import": "导入案卷", "case.link": "关联案件",
    "case.view": "查看案件", "case.search": "查询案件",
    "link.view": "查看串并案", "link.confirm": "确认同一人", "link.merge": "合并声音", "link.split": "拆分声音",
    "link.promote": "未知声音转为人员", "link.recluster": "重新聚类",
    "retention.apply": "执行保存期限", "retention.erase": "到期删除",
    "login": "登录", "login.failed": "登录失败", "login.refused": "拒绝登录", "login.throttled": "登录受限", "logout": "退出登录",
    "user.add": "新增用户", "user.disable": "停用用户", "user.enable": "启用用户", "user.passwd": "修改密码",
    "audit.view": "查看审计记录", "pending.view": "查看待批准", "calls.leads": "话单线索", "leads": "生成线索",
    "leads.view": "查看话单线索", "fused.view": "查看综合线索", "leadchart.view": "查看关系图", "graph.refresh": "刷新线索图",
}

#: The evidence sources of a fused lead (voiceprint.fused.SOURCES): codes on the command line (`--sources`) and in
#: English pages, words in Chinese ones.
EVIDENCE_SOURCES: dict[str, str] = {"cdr": "话单", "voice": "声纹"}
