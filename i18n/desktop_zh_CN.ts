<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE TS>
<TS version="2.1" language="zh_CN" sourcelanguage="en">
<context>
    <name>CatalogueModel</name>
    <message>
        <source>Made for another base model than the current checkpoint.</source>
        <translation>为另一种基础模型制作，与当前模型不匹配。</translation>
    </message>
    <message>
        <source>Trigger words: {words}</source>
        <translation>触发词：{words}</translation>
    </message>
    <message>
        <source>Base model (civitai): {base}</source>
        <translation>基础模型 (civitai)：{base}</translation>
    </message>
</context>
<context>
    <name>EngineWorker</name>
    <message>
        <source>The engine failed to start: {error}</source>
        <translation>生成引擎启动失败：{error}</translation>
    </message>
</context>
<context>
    <name>FileActions</name>
    <message>
        <source>Delete Permanently?</source>
        <translation>永久删除？</translation>
    </message>
    <message>
        <source>{name} cannot be moved to the Trash on this disk. Delete it permanently? This cannot be undone.</source>
        <translation>此磁盘上的 {name} 无法移到废纸篓。要永久删除吗？此操作无法撤销。</translation>
    </message>
    <message>
        <source>Could Not Delete</source>
        <translation>无法删除</translation>
    </message>
    <message>
        <source>{name} could not be deleted: {error}</source>
        <translation>无法删除 {name}：{error}</translation>
    </message>
</context>
<context>
    <name>GalleryModel</name>
    <message>
        <source>Today</source>
        <translation>今天</translation>
    </message>
    <message>
        <source>Yesterday</source>
        <translation>昨天</translation>
    </message>
    <message>
        <source>Seed {seed}</source>
        <translation>随机种子 {seed}</translation>
    </message>
</context>
<context>
    <name>GalleryPane</name>
    <message>
        <source>Search prompts</source>
        <translation>搜索提示词</translation>
    </message>
    <message>
        <source>All models</source>
        <translation>全部模型</translation>
    </message>
    <message>
        <source>All samplers</source>
        <translation>全部采样方法</translation>
    </message>
    <message>
        <source>All sizes</source>
        <translation>全部尺寸</translation>
    </message>
    <message>
        <source>Any time</source>
        <translation>任何时间</translation>
    </message>
    <message>
        <source>Today</source>
        <translation>今天</translation>
    </message>
    <message>
        <source>Last 7 days</source>
        <translation>最近 7 天</translation>
    </message>
    <message>
        <source>Last 30 days</source>
        <translation>最近 30 天</translation>
    </message>
    <message>
        <source>Newest first</source>
        <translation>最新的在前</translation>
    </message>
    <message>
        <source>Oldest first</source>
        <translation>最早的在前</translation>
    </message>
    <message>
        <source>Name</source>
        <translation>名称</translation>
    </message>
    <message>
        <source>Show favourites only</source>
        <translation>只显示收藏</translation>
    </message>
    <message>
        <source>Thumbnails</source>
        <translation>缩略图</translation>
    </message>
    <message>
        <source>List by day</source>
        <translation>按日期列出</translation>
    </message>
    <message>
        <source>Show in Detail View</source>
        <translation>在详细视图中显示</translation>
    </message>
    <message>
        <source>Reuse Parameters</source>
        <translation>重用参数</translation>
    </message>
    <message>
        <source>Reuse Seed</source>
        <translation>重用随机种子</translation>
    </message>
    <message>
        <source>Copy Prompt</source>
        <translation>复制提示词</translation>
    </message>
    <message>
        <source>Copy Infotext</source>
        <translation>复制生成信息</translation>
    </message>
    <message>
        <source>Reveal in Finder</source>
        <translation>在访达中显示</translation>
    </message>
    <message>
        <source>Show in Folder</source>
        <translation>在文件夹中显示</translation>
    </message>
    <message>
        <source>Move to Trash…</source>
        <translation>移到废纸篓…</translation>
    </message>
    <message>
        <source>Move to Trash</source>
        <translation>移到废纸篓</translation>
    </message>
    <message>
        <source>Move {name} to the Trash?</source>
        <translation>要将 {name} 移到废纸篓吗？</translation>
    </message>
    <message>
        <source>Remove from Favourites</source>
        <translation>取消收藏</translation>
    </message>
    <message>
        <source>Add to Favourites</source>
        <translation>加入收藏</translation>
    </message>
    <message>
        <source>1 image</source>
        <translation>1 张图像</translation>
    </message>
    <message>
        <source>{count} images</source>
        <translation>{count} 张图像</translation>
    </message>
    <message>
        <source>{count} of {total} images</source>
        <translation>{count} / {total} 张图像</translation>
    </message>
</context>
<context>
    <name>ImageDetail</name>
    <message>
        <source>This image cannot be shown: {error}</source>
        <translation>无法显示此图像：{error}</translation>
    </message>
    <message>
        <source>Written by {tool}</source>
        <translation>由 {tool} 生成</translation>
    </message>
    <message>
        <source>No generation parameters found</source>
        <translation>未找到生成参数</translation>
    </message>
    <message>
        <source>Reuse Parameters</source>
        <translation>重用参数</translation>
    </message>
    <message>
        <source>Reuse Seed</source>
        <translation>重用随机种子</translation>
    </message>
    <message>
        <source>Copy Prompt</source>
        <translation>复制提示词</translation>
    </message>
    <message>
        <source>Copy Infotext</source>
        <translation>复制生成信息</translation>
    </message>
    <message>
        <source>Reveal in Finder</source>
        <translation>在访达中显示</translation>
    </message>
    <message>
        <source>Show in Folder</source>
        <translation>在文件夹中显示</translation>
    </message>
    <message>
        <source>★ Favourite</source>
        <translation>★ 已收藏</translation>
    </message>
    <message>
        <source>☆ Favourite</source>
        <translation>☆ 收藏</translation>
    </message>
    <message>
        <source>Move to Trash…</source>
        <translation>移到废纸篓…</translation>
    </message>
    <message>
        <source>Zoom In</source>
        <translation>放大</translation>
    </message>
    <message>
        <source>Zoom Out</source>
        <translation>缩小</translation>
    </message>
    <message>
        <source>Zoom to Fit</source>
        <translation>缩放至适合大小</translation>
    </message>
    <message>
        <source>Actual Size</source>
        <translation>实际大小</translation>
    </message>
</context>
<context>
    <name>JobQueue</name>
    <message>
        <source>The saved queue could not be read ({error}); it was moved to {name}.</source>
        <translation>无法读取已保存的队列（{error}），已将其移至 {name}。</translation>
    </message>
    <message>
        <source>{steps} steps</source>
        <translation>{steps} 步</translation>
    </message>
    <message>
        <source>waiting</source>
        <translation>等待中</translation>
    </message>
    <message>
        <source>finished</source>
        <translation>已完成</translation>
    </message>
    <message>
        <source>cancelled</source>
        <translation>已取消</translation>
    </message>
    <message>
        <source>failed</source>
        <translation>失败</translation>
    </message>
</context>
<context>
    <name>Language</name>
    <message>
        <source>Qt&apos;s Chinese texts ({file}) were not found; standard buttons stay in English.</source>
        <translation>未找到 Qt 自带的中文翻译（{file}），标准按钮将保持英文。</translation>
    </message>
    <message>
        <source>The Chinese translation could not be loaded ({file}); the interface stays in English.</source>
        <translation>无法加载中文翻译（{file}），界面将保持英文。</translation>
    </message>
</context>
<context>
    <name>MainWindow</name>
    <message>
        <source>Diffusion Desktop</source>
        <translation>Diffusion Desktop</translation>
    </message>
    <message>
        <source>Prompt</source>
        <translation>提示词</translation>
    </message>
    <message>
        <source>Negative prompt</source>
        <translation>反向提示词</translation>
    </message>
    <message>
        <source>Styles</source>
        <translation>预设样式</translation>
    </message>
    <message>
        <source>Apply</source>
        <translation>应用</translation>
    </message>
    <message>
        <source>Add the style&apos;s text to the prompts</source>
        <translation>将预设样式的文本添加到提示词</translation>
    </message>
    <message>
        <source>Save…</source>
        <translation>保存…</translation>
    </message>
    <message>
        <source>Save the current prompts as a style</source>
        <translation>将当前提示词保存为预设样式</translation>
    </message>
    <message>
        <source>Generate</source>
        <translation>生成</translation>
    </message>
    <message>
        <source>Add to the queue (⌘↩)</source>
        <translation>加入队列 (⌘↩)</translation>
    </message>
    <message>
        <source>Cancel</source>
        <translation>中止</translation>
    </message>
    <message>
        <source>Stop the running job (⌘.)</source>
        <translation>中止正在运行的任务 (⌘.)</translation>
    </message>
    <message>
        <source>Skip</source>
        <translation>跳过</translation>
    </message>
    <message>
        <source>Abandon the current image and go on with the next</source>
        <translation>放弃当前图像，继续生成下一张</translation>
    </message>
    <message>
        <source>Generate forever</source>
        <translation>无限生成</translation>
    </message>
    <message>
        <source>Your images appear here.
Write a prompt and press ⌘↩.</source>
        <translation>生成的图像会显示在这里。
写好提示词，然后按 ⌘↩。</translation>
    </message>
    <message>
        <source>Describe the image: a photo of a cat, (masterpiece:1.2), &lt;lora:name:0.8&gt;…</source>
        <translation>描述图像：a photo of a cat, (masterpiece:1.2), &lt;lora:name:0.8&gt;…</translation>
    </message>
    <message>
        <source>What to avoid: blurry, low quality…</source>
        <translation>不希望出现的内容：blurry, low quality…</translation>
    </message>
    <message>
        <source>Welcome to Diffusion Desktop.

No model is installed yet. Download a Stable Diffusion checkpoint (.safetensors) from civitai.com or huggingface.co, then drop it on this window or put it in the models folder:

{folder}</source>
        <translation>欢迎使用 Diffusion Desktop。

尚未安装任何模型。请从 civitai.com 或 huggingface.co 下载 Stable Diffusion 模型（.safetensors），然后拖放到此窗口，或放入模型文件夹：

{folder}</translation>
    </message>
    <message>
        <source>Open the Models Folder</source>
        <translation>打开模型文件夹</translation>
    </message>
    <message>
        <source>Models</source>
        <translation>模型</translation>
    </message>
    <message>
        <source>Gallery</source>
        <translation>图库</translation>
    </message>
    <message>
        <source>Queue</source>
        <translation>队列</translation>
    </message>
    <message>
        <source>Stop installing the dropped models</source>
        <translation>停止安装拖入的模型</translation>
    </message>
    <message>
        <source>Move up</source>
        <translation>上移</translation>
    </message>
    <message>
        <source>Move down</source>
        <translation>下移</translation>
    </message>
    <message>
        <source>Remove</source>
        <translation>移除</translation>
    </message>
    <message>
        <source>Pause</source>
        <translation>暂停</translation>
    </message>
    <message>
        <source>Clear finished</source>
        <translation>清除已完成</translation>
    </message>
    <message>
        <source>File</source>
        <translation>文件</translation>
    </message>
    <message>
        <source>Edit</source>
        <translation>编辑</translation>
    </message>
    <message>
        <source>View</source>
        <translation>显示</translation>
    </message>
    <message>
        <source>Window</source>
        <translation>窗口</translation>
    </message>
    <message>
        <source>Help</source>
        <translation>帮助</translation>
    </message>
    <message>
        <source>About Diffusion Desktop</source>
        <translation>关于 Diffusion Desktop</translation>
    </message>
    <message>
        <source>Preferences…</source>
        <translation>设置…</translation>
    </message>
    <message>
        <source>Quit Diffusion Desktop</source>
        <translation>退出 Diffusion Desktop</translation>
    </message>
    <message>
        <source>Open Model…</source>
        <translation>打开模型…</translation>
    </message>
    <message>
        <source>Import Model…</source>
        <translation>导入模型…</translation>
    </message>
    <message>
        <source>Refresh Models</source>
        <translation>刷新模型列表</translation>
    </message>
    <message>
        <source>Reveal Output Folder</source>
        <translation>打开输出文件夹</translation>
    </message>
    <message>
        <source>Undo</source>
        <translation>撤销</translation>
    </message>
    <message>
        <source>Redo</source>
        <translation>重做</translation>
    </message>
    <message>
        <source>Skip Image</source>
        <translation>跳过当前图像</translation>
    </message>
    <message>
        <source>Minimize</source>
        <translation>最小化</translation>
    </message>
    <message>
        <source>Diffusion Desktop Help</source>
        <translation>Diffusion Desktop 帮助</translation>
    </message>
    <message>
        <source>{count} queued job(s) restored; press Pause to resume.</source>
        <translation>已恢复 {count} 个排队任务；再按一次“暂停”即可继续。</translation>
    </message>
    <message>
        <source>The settings file was damaged and has been set aside ({name}); defaults are in use.</source>
        <translation>设置文件已损坏，已另存为 {name}，现使用默认设置。</translation>
    </message>
    <message>
        <source>Choose a checkpoint first (or drop a .safetensors file on the window).</source>
        <translation>请先选择模型（或将 .safetensors 文件拖放到窗口上）。</translation>
    </message>
    <message>
        <source>Diffusion Desktop
Stable Diffusion on your Mac, with A1111&apos;s prompts, samplers and seeds.</source>
        <translation>Diffusion Desktop
在 Mac 上运行 Stable Diffusion，提示词、采样方法和随机种子均与 A1111 一致。</translation>
    </message>
    <message>
        <source>Open Model</source>
        <translation>打开模型</translation>
    </message>
    <message>
        <source>Models (*.safetensors)</source>
        <translation>模型 (*.safetensors)</translation>
    </message>
    <message>
        <source>Import Models</source>
        <translation>导入模型</translation>
    </message>
    <message>
        <source>Models (*.safetensors *.ckpt *.pt *.pth *.bin)</source>
        <translation>模型 (*.safetensors *.ckpt *.pt *.pth *.bin)</translation>
    </message>
    <message>
        <source>Parameters reused</source>
        <translation>已重用参数</translation>
    </message>
    <message>
        <source>{model} is not installed under that name; using {other}, which has the same hash</source>
        <translation>未以该名称安装 {model}；改用哈希值相同的 {other}</translation>
    </message>
    <message>
        <source>This image was made with the model {model} (hash {hash}), which is not installed; the current model is kept.</source>
        <translation>此图像使用模型 {model}（哈希值 {hash}）生成，但该模型尚未安装；将保留当前模型。</translation>
    </message>
    <message>
        <source>Select an image in the gallery first, then choose Set Preview again.</source>
        <translation>请先在图库中选择一张图像，然后再次选择“将所选图像设为预览图”。</translation>
    </message>
    <message>
        <source>Could not write the preview next to {name}.</source>
        <translation>无法在 {name} 旁写入预览图。</translation>
    </message>
    <message>
        <source>hashing {name} {percent}%</source>
        <translation>正在计算 {name} 的哈希值 {percent}%</translation>
    </message>
    <message>
        <source>Save Style</source>
        <translation>保存预设样式</translation>
    </message>
    <message>
        <source>Style name:</source>
        <translation>样式名称：</translation>
    </message>
    <message>
        <source>Loading the model…</source>
        <translation>正在加载模型…</translation>
    </message>
    <message>
        <source>Step {step}/{total} · {rate} it/s · {eta} left</source>
        <translation>第 {step}/{total} 步 · {rate} it/s · 剩余 {eta}</translation>
    </message>
    <message>
        <source>Batch {index}/{count}</source>
        <translation>第 {index}/{count} 批</translation>
    </message>
    <message>
        <source>Ready</source>
        <translation>就绪</translation>
    </message>
    <message>
        <source>Done: {count} image(s) in {seconds} s</source>
        <translation>完成：{count} 张图像，用时 {seconds} 秒</translation>
    </message>
    <message>
        <source>Cancelled after {count} image(s)</source>
        <translation>已中止，已生成 {count} 张图像</translation>
    </message>
    <message>
        <source>Failed</source>
        <translation>失败</translation>
    </message>
    <message>
        <source>Installing {name}</source>
        <translation>正在安装 {name}</translation>
    </message>
    <message>
        <source>({count} left)</source>
        <translation>（还剩 {count} 个）</translation>
    </message>
    <message>
        <source>{name} is already installed as {existing}</source>
        <translation>{name} 已安装为 {existing}</translation>
    </message>
    <message>
        <source>Converted {name} to {installed} and installed it</source>
        <translation>已将 {name} 转换为 {installed} 并安装</translation>
    </message>
    <message>
        <source>Installed {name}: {what}</source>
        <translation>已安装 {name}：{what}</translation>
    </message>
    <message>
        <source>Could not install {name}: {error}</source>
        <translation>无法安装 {name}：{error}</translation>
    </message>
    <message>
        <source>{name} is an incomplete download: wait for it to finish, then drop the finished file.</source>
        <translation>{name} 尚未下载完成：请等待下载结束，再拖入完整的文件。</translation>
    </message>
    <message>
        <source>{name} is a folder without a model in it (a diffusers model folder has a model_index.json).</source>
        <translation>{name} 是一个不含模型的文件夹（diffusers 模型文件夹中应有 model_index.json）。</translation>
    </message>
    <message>
        <source>{name} is not a model file: models are .safetensors files (or .ckpt/.pt files, which are converted).</source>
        <translation>{name} 不是模型文件：模型应为 .safetensors 文件（.ckpt/.pt 文件会先转换）。</translation>
    </message>
</context>
<context>
    <name>MetadataView</name>
    <message>
        <source>Prompt</source>
        <translation>提示词</translation>
    </message>
    <message>
        <source>Negative prompt</source>
        <translation>反向提示词</translation>
    </message>
    <message>
        <source>Parameters</source>
        <translation>参数</translation>
    </message>
    <message>
        <source>(none)</source>
        <translation>（无）</translation>
    </message>
</context>
<context>
    <name>ModelBrowser</name>
    <message>
        <source>Checkpoints</source>
        <translation>模型</translation>
    </message>
    <message>
        <source>LoRA</source>
        <translation>LoRA</translation>
    </message>
    <message>
        <source>Embeddings</source>
        <translation>嵌入式</translation>
    </message>
    <message>
        <source>Hypernetworks</source>
        <translation>超网络</translation>
    </message>
    <message>
        <source>VAE</source>
        <translation>VAE</translation>
    </message>
    <message>
        <source>Other</source>
        <translation>其他</translation>
    </message>
    <message>
        <source>Files the app recognised but cannot use, and why</source>
        <translation>已识别但无法使用的文件及原因</translation>
    </message>
    <message>
        <source>Search names and trigger words</source>
        <translation>搜索名称和触发词</translation>
    </message>
    <message>
        <source>Thumbnails</source>
        <translation>缩略图</translation>
    </message>
    <message>
        <source>List</source>
        <translation>列表</translation>
    </message>
    <message>
        <source>Reveal in Finder</source>
        <translation>在访达中显示</translation>
    </message>
    <message>
        <source>Show in Folder</source>
        <translation>在文件夹中显示</translation>
    </message>
    <message>
        <source>Set Preview from Selected Image</source>
        <translation>将所选图像设为预览图</translation>
    </message>
    <message>
        <source>Copy Hash</source>
        <translation>复制哈希值</translation>
    </message>
    <message>
        <source>Copy SHA-256</source>
        <translation>复制 SHA-256</translation>
    </message>
    <message>
        <source>Convert to .safetensors</source>
        <translation>转换为 .safetensors</translation>
    </message>
    <message>
        <source>Show Details…</source>
        <translation>显示详细信息…</translation>
    </message>
    <message>
        <source>Move to Trash…</source>
        <translation>移到废纸篓…</translation>
    </message>
    <message>
        <source>Use This Checkpoint</source>
        <translation>使用此模型</translation>
    </message>
    <message>
        <source>Use This VAE</source>
        <translation>使用此 VAE</translation>
    </message>
    <message>
        <source>Insert into Prompt</source>
        <translation>插入到提示词</translation>
    </message>
    <message>
        <source>Move to Trash</source>
        <translation>移到废纸篓</translation>
    </message>
    <message>
        <source>Move {name} and its preview and notes to the Trash?</source>
        <translation>要将 {name} 及其预览图和备注移到废纸篓吗？</translation>
    </message>
    <message>
        <source>{count} model(s)</source>
        <translation>{count} 个模型</translation>
    </message>
</context>
<context>
    <name>ModelDetails</name>
    <message>
        <source>(computing…)</source>
        <translation>（计算中…）</translation>
    </message>
    <message>
        <source>Name</source>
        <translation>名称</translation>
    </message>
    <message>
        <source>What it is</source>
        <translation>类型说明</translation>
    </message>
    <message>
        <source>Kind</source>
        <translation>种类</translation>
    </message>
    <message>
        <source>Base</source>
        <translation>基础模型</translation>
    </message>
    <message>
        <source>Size</source>
        <translation>大小</translation>
    </message>
    <message>
        <source>File</source>
        <translation>文件</translation>
    </message>
    <message>
        <source>Model hash (AutoV2)</source>
        <translation>模型哈希值 (AutoV2)</translation>
    </message>
    <message>
        <source>SHA-256</source>
        <translation>SHA-256</translation>
    </message>
    <message>
        <source>Network hash (Lora/TI hashes)</source>
        <translation>网络哈希值 (Lora/TI hashes)</translation>
    </message>
    <message>
        <source>Legacy hash</source>
        <translation>旧版哈希值</translation>
    </message>
    <message>
        <source>Trigger words</source>
        <translation>触发词</translation>
    </message>
    <message>
        <source>Base model (civitai)</source>
        <translation>基础模型 (civitai)</translation>
    </message>
    <message>
        <source>civitai page</source>
        <translation>civitai 页面</translation>
    </message>
    <message>
        <source>Notes</source>
        <translation>备注</translation>
    </message>
    <message>
        <source>How it was recognised</source>
        <translation>识别依据</translation>
    </message>
    <message>
        <source>Metadata in the file</source>
        <translation>文件中的元数据</translation>
    </message>
</context>
<context>
    <name>ParametersPanel</name>
    <message>
        <source>Checkpoint</source>
        <translation>模型</translation>
    </message>
    <message>
        <source>VAE</source>
        <translation>外挂 VAE 模型</translation>
    </message>
    <message>
        <source>Sampler</source>
        <translation>采样方法</translation>
    </message>
    <message>
        <source>Schedule type</source>
        <translation>调度类型</translation>
    </message>
    <message>
        <source>Sampling steps</source>
        <translation>迭代步数</translation>
    </message>
    <message>
        <source>CFG scale</source>
        <translation>提示词引导系数</translation>
    </message>
    <message>
        <source>Width × height</source>
        <translation>宽度 × 高度</translation>
    </message>
    <message>
        <source>Size presets</source>
        <translation>尺寸预设</translation>
    </message>
    <message>
        <source>Seed</source>
        <translation>随机种子</translation>
    </message>
    <message>
        <source>Batch count × size</source>
        <translation>生成批次 × 每批数量</translation>
    </message>
    <message>
        <source>Clip skip</source>
        <translation>CLIP 终止层数</translation>
    </message>
    <message>
        <source>Swap width and height</source>
        <comment>tooltip</comment>
        <translation>交换宽度和高度</translation>
    </message>
    <message>
        <source>Random seed (-1)</source>
        <comment>tooltip</comment>
        <translation>随机种子 (-1)</translation>
    </message>
    <message>
        <source>Reuse the seed of the last image</source>
        <translation>重用上一张图像的随机种子</translation>
    </message>
    <message>
        <source>-1 picks a random seed and records it in the image</source>
        <translation>-1 表示随机选取种子，并记录在图像中</translation>
    </message>
    <message>
        <source>How many batches to generate one after another</source>
        <translation>依次生成多少批</translation>
    </message>
    <message>
        <source>How many images per batch (uses more memory)</source>
        <translation>每批同时生成多少张图像（占用更多内存）</translation>
    </message>
    <message>
        <source>How strongly the image follows the prompt</source>
        <translation>图像与提示词的贴合程度</translation>
    </message>
    <message>
        <source>Use an earlier CLIP layer (2 for many anime models)</source>
        <translation>使用更靠前的 CLIP 层（许多二次元模型用 2）</translation>
    </message>
    <message>
        <source>Automatic (the checkpoint&apos;s own)</source>
        <translation>自动（使用模型自带的）</translation>
    </message>
    <message>
        <source>The seed must be at most {max}.</source>
        <translation>随机种子不能大于 {max}。</translation>
    </message>
    <message>
        <source>Reuse the seed of the last image ({seed})</source>
        <translation>重用上一张图像的随机种子 ({seed})</translation>
    </message>
    <message>
        <source>Choose a size…</source>
        <translation>选择尺寸…</translation>
    </message>
</context>
<context>
    <name>PngInfoDialog</name>
    <message>
        <source>… ({count} more characters not shown)</source>
        <translation>…（另有 {count} 个字符未显示）</translation>
    </message>
    <message>
        <source>PNG Info</source>
        <translation>PNG 图片信息</translation>
    </message>
    <message>
        <source>Written by {tool}</source>
        <translation>由 {tool} 生成</translation>
    </message>
    <message>
        <source>No generation parameters found</source>
        <translation>未找到生成参数</translation>
    </message>
    <message>
        <source>Show Raw</source>
        <translation>显示原始数据</translation>
    </message>
    <message>
        <source>Reuse Parameters</source>
        <translation>重用参数</translation>
    </message>
    <message>
        <source>Copy Infotext</source>
        <translation>复制生成信息</translation>
    </message>
    <message>
        <source>Cannot Read Image</source>
        <translation>无法读取图像</translation>
    </message>
    <message>
        <source>{name} cannot be read: {error}</source>
        <translation>无法读取 {name}：{error}</translation>
    </message>
</context>
<context>
    <name>PreferencesDialog</name>
    <message>
        <source>Preferences</source>
        <translation>设置</translation>
    </message>
    <message>
        <source>Model folders</source>
        <translation>模型文件夹</translation>
    </message>
    <message>
        <source>Dropped models</source>
        <translation>拖入的模型</translation>
    </message>
    <message>
        <source>Output folder</source>
        <translation>输出文件夹</translation>
    </message>
    <message>
        <source>Device</source>
        <translation>运算设备</translation>
    </message>
    <message>
        <source>Precision</source>
        <translation>计算精度</translation>
    </message>
    <message>
        <source>Live preview</source>
        <translation>实时预览</translation>
    </message>
    <message>
        <source>Language</source>
        <translation>语言</translation>
    </message>
    <message>
        <source>Extra model folders, for example an existing A1111 or ComfyUI “models” folder</source>
        <translation>额外的模型文件夹，例如已有的 A1111 或 ComfyUI 的 “models” 文件夹</translation>
    </message>
    <message>
        <source>Copy into the models folder</source>
        <translation>复制到模型文件夹</translation>
    </message>
    <message>
        <source>Move into the models folder</source>
        <translation>移动到模型文件夹</translation>
    </message>
    <message>
        <source>Link (the file stays where it is)</source>
        <translation>链接（文件保留在原处）</translation>
    </message>
    <message>
        <source>What happens to a model file dropped on the window</source>
        <translation>把模型文件拖到窗口上时如何处理</translation>
    </message>
    <message>
        <source>Add…</source>
        <translation>添加…</translation>
    </message>
    <message>
        <source>Remove</source>
        <translation>移除</translation>
    </message>
    <message>
        <source>Choose…</source>
        <translation>选择…</translation>
    </message>
    <message>
        <source>Automatic (Apple GPU when available)</source>
        <translation>自动（可用时使用 Apple GPU）</translation>
    </message>
    <message>
        <source>Automatic (fp16 on GPU, fp32 VAE)</source>
        <translation>自动（GPU 上用 fp16，VAE 用 fp32）</translation>
    </message>
    <message>
        <source>fp32 (slow, most compatible)</source>
        <translation>fp32（较慢，兼容性最好）</translation>
    </message>
    <message>
        <source>Every step (TAESD when installed in VAE-approx)</source>
        <translation>每一步（若 VAE-approx 中装有 TAESD 则使用）</translation>
    </message>
    <message>
        <source>Takes effect at once, in every window</source>
        <translation>立即生效，所有窗口同时切换</translation>
    </message>
    <message>
        <source>Attention slicing (less memory, a little slower)</source>
        <translation>注意力切片（省内存，稍慢）</translation>
    </message>
    <message>
        <source>Off</source>
        <translation>关闭</translation>
    </message>
    <message>
        <source>System</source>
        <translation>跟随系统</translation>
    </message>
    <message>
        <source>Choose a models folder</source>
        <translation>选择模型文件夹</translation>
    </message>
    <message>
        <source>Choose the output folder</source>
        <translation>选择输出文件夹</translation>
    </message>
</context>
<context>
    <name>PromptEditor</name>
    <message>
        <source>Prompt</source>
        <translation>提示词</translation>
    </message>
    <message>
        <source>Tokens used, of what the prompt&apos;s 75-token chunks hold</source>
        <translation>已用 token 数 / 当前 75 token 分段的容量</translation>
    </message>
</context>
</TS>
