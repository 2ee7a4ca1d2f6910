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
    <name>DatasetModel</name>
    <message>
        <source>No caption: trained on the folder name or trigger word only</source>
        <translation>无标注：仅以文件夹名称或触发词训练</translation>
    </message>
</context>
<context>
    <name>DatasetView</name>
    <message>
        <source>A folder of images with .txt captions (kohya: 10_name subfolders repeat 10×)</source>
        <translation>包含图像及 .txt 标注的文件夹（kohya：10_name 子文件夹重复 10 次）</translation>
    </message>
    <message>
        <source>Choose…</source>
        <translation>选择…</translation>
    </message>
    <message>
        <source>Choose the folder of training images (or drop it on the window)</source>
        <translation>选择训练图像所在的文件夹（或将其拖放到窗口上）</translation>
    </message>
    <message>
        <source>Save Caption</source>
        <translation>保存标注</translation>
    </message>
    <message>
        <source>Write the caption to its .txt file (⌘S); switching images saves too</source>
        <translation>将标注写入对应的 .txt 文件 (⌘S)；切换图像时也会保存</translation>
    </message>
    <message>
        <source>This image has no caption yet. Describe what is in it; the trigger word is added for you.</source>
        <translation>此图像还没有标注。请描述图中的内容；触发词会自动添加。</translation>
    </message>
    <message>
        <source>Choose the folder of training images</source>
        <translation>选择训练图像所在的文件夹</translation>
    </message>
    <message>
        <source>Cannot save the caption {file}: {error}</source>
        <translation>无法保存标注 {file}：{error}</translation>
    </message>
    <message>
        <source>Select an image to edit its caption</source>
        <translation>选择一张图像以编辑其标注</translation>
    </message>
    <message>
        <source>{name}: no caption</source>
        <translation>{name}：无标注</translation>
    </message>
    <message>
        <source>Caption of {name}</source>
        <translation>{name} 的标注</translation>
    </message>
</context>
<context>
    <name>EngineWorker</name>
    <message>
        <source>The engine failed to start: {error}</source>
        <translation>生成引擎启动失败：{error}</translation>
    </message>
    <message>
        <source>Models unloaded for training</source>
        <translation>已卸载模型以进行训练</translation>
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
    <name>LossPlot</name>
    <message>
        <source>loss</source>
        <translation>损失</translation>
    </message>
    <message>
        <source>average</source>
        <translation>平均值</translation>
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
        <source>Training</source>
        <translation>训练</translation>
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
        <source>Train LoRA…</source>
        <translation>训练 LoRA…</translation>
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
        <source>{checkpoint} now prefers the VAE {vae}</source>
        <translation>{checkpoint} 的首选 VAE 已设为 {vae}</translation>
    </message>
    <message>
        <source>{checkpoint} now uses its own VAE (no preference)</source>
        <translation>{checkpoint} 现在使用模型自带的 VAE（无首选）</translation>
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
        <source>Training: generation is paused and the models are unloaded</source>
        <translation>训练中：已暂停生成并卸载模型</translation>
    </message>
    <message>
        <source>Training is running</source>
        <translation>训练正在进行</translation>
    </message>
    <message>
        <source>Quitting cancels the training. A LoRA of the steps so far and the resume state are saved.</source>
        <translation>退出将中止训练。截至目前的训练结果会保存为 LoRA，断点也会一并保存。</translation>
    </message>
    <message>
        <source>Cancel Training and Quit</source>
        <translation>中止训练并退出</translation>
    </message>
    <message>
        <source>Keep Training</source>
        <translation>继续训练</translation>
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
        <source>Preferred VAE</source>
        <translation>首选 VAE</translation>
    </message>
    <message>
        <source>Automatic (none)</source>
        <translation>自动（无首选）</translation>
    </message>
    <message>
        <source>No preference: the VAE baked into the checkpoint</source>
        <translation>无首选：使用模型自带的 VAE</translation>
    </message>
    <message>
        <source>{name} (not installed)</source>
        <translation>{name}（未安装）</translation>
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
        <source>Automatic ({name})</source>
        <translation>自动（{name}）</translation>
    </message>
    <message>
        <source>Automatic (baked in; {name} not found)</source>
        <translation>自动（模型自带；未找到 {name}）</translation>
    </message>
    <message>
        <source>Automatic (baked in)</source>
        <translation>自动（模型自带）</translation>
    </message>
    <message>
        <source>The VAE preferred for this checkpoint (Models pane: right-click the checkpoint, Preferred VAE), else the one baked into the checkpoint</source>
        <translation>此模型的首选 VAE（在“模型”面板中右键点击模型，选择“首选 VAE”）；未设置时使用模型自带的 VAE</translation>
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
        <source>The seed must be at most {max}.</source>
        <translation>随机种子不能大于 {max}。</translation>
    </message>
    <message>
        <source>Reuse the seed of the last image ({seed})</source>
        <translation>重用上一张图像的随机种子 ({seed})</translation>
    </message>
    <message>
        <source>The preferred VAE of {checkpoint}, {vae}, is not installed; the checkpoint&apos;s own VAE is used.</source>
        <translation>{checkpoint} 的首选 VAE {vae} 未安装，已改用模型自带的 VAE。</translation>
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
<context>
    <name>RunMonitor</name>
    <message>
        <source>Pause</source>
        <translation>暂停</translation>
    </message>
    <message>
        <source>Pause after the current step; the memory stays in use</source>
        <translation>当前步完成后暂停；内存仍保持占用</translation>
    </message>
    <message>
        <source>Save Now</source>
        <translation>立即保存</translation>
    </message>
    <message>
        <source>Save a LoRA of the steps so far, then go on</source>
        <translation>将截至目前的训练结果保存为 LoRA，然后继续</translation>
    </message>
    <message>
        <source>Sample Now</source>
        <translation>立即生成样图</translation>
    </message>
    <message>
        <source>Generate the sample images now, then go on</source>
        <translation>立即生成样图，然后继续</translation>
    </message>
    <message>
        <source>Cancel…</source>
        <translation>中止…</translation>
    </message>
    <message>
        <source>Stop training; a LoRA of the steps so far is saved (⌘.)</source>
        <translation>停止训练；截至目前的训练结果会保存为 LoRA (⌘.)</translation>
    </message>
    <message>
        <source>Samples</source>
        <translation>样图</translation>
    </message>
    <message>
        <source>Log</source>
        <translation>日志</translation>
    </message>
    <message>
        <source>Without the LoRA</source>
        <translation>不使用 LoRA</translation>
    </message>
    <message>
        <source>With the LoRA</source>
        <translation>使用 LoRA</translation>
    </message>
    <message>
        <source>The loss appears here once training starts.
It is noisy; the line is its moving average.</source>
        <translation>训练开始后，损失值会显示在这里。
损失值波动较大，曲线为其移动平均值。</translation>
    </message>
    <message>
        <source>Not started</source>
        <translation>未开始</translation>
    </message>
    <message>
        <source>%v of %m steps</source>
        <translation>%v / %m 步</translation>
    </message>
    <message>
        <source>Training {images} images on {device}: {steps} steps in {epochs} epochs</source>
        <translation>在 {device} 上训练 {images} 张图像：{epochs} 轮，共 {steps} 步</translation>
    </message>
    <message>
        <source>Resumed from step {step}</source>
        <translation>已从第 {step} 步继续</translation>
    </message>
    <message>
        <source>Loading the model…</source>
        <translation>正在加载模型…</translation>
    </message>
    <message>
        <source>Preparing the images…</source>
        <translation>正在准备图像…</translation>
    </message>
    <message>
        <source>Epoch {epoch}</source>
        <translation>第 {epoch} 轮</translation>
    </message>
    <message>
        <source>{time} left</source>
        <translation>剩余 {time}</translation>
    </message>
    <message>
        <source>Memory {size}</source>
        <translation>内存 {size}</translation>
    </message>
    <message>
        <source>Training · step {step} · loss {loss}</source>
        <translation>训练中 · 第 {step} 步 · 损失 {loss}</translation>
    </message>
    <message>
        <source>after epoch {epoch}</source>
        <translation>第 {epoch} 轮结束</translation>
    </message>
    <message>
        <source>final</source>
        <translation>最终版本</translation>
    </message>
    <message>
        <source>on request</source>
        <translation>手动保存</translation>
    </message>
    <message>
        <source>of the steps so far</source>
        <translation>中止时保存</translation>
    </message>
    <message>
        <source>Saved {file} ({reason}, step {step})</source>
        <translation>已保存 {file}（{reason}，第 {step} 步）</translation>
    </message>
    <message>
        <source>Resume point saved at step {step}</source>
        <translation>已在第 {step} 步保存断点</translation>
    </message>
    <message>
        <source>step {step}</source>
        <translation>第 {step} 步</translation>
    </message>
    <message>
        <source>Checked: {matched} of {total} layers of the LoRA load into the model.</source>
        <translation>检查结果：LoRA 的 {total} 个层中有 {matched} 个可载入模型。</translation>
    </message>
    <message>
        <source>It changes the image.</source>
        <translation>它会改变生成的图像。</translation>
    </message>
    <message>
        <source>It did not change the sample image: it may have learned too little.</source>
        <translation>它没有改变样图：可能学到的内容太少。</translation>
    </message>
    <message>
        <source>Some layers did not match: other apps may not load this file fully.</source>
        <translation>部分层不匹配：其他应用可能无法完整加载此文件。</translation>
    </message>
    <message>
        <source>Paused at step {step}</source>
        <translation>已在第 {step} 步暂停</translation>
    </message>
    <message>
        <source>Training · step {step}</source>
        <translation>训练中 · 第 {step} 步</translation>
    </message>
    <message>
        <source>Cancelled after {steps} steps. The LoRA of the steps so far: {file}</source>
        <translation>已在 {steps} 步后中止。截至目前的 LoRA：{file}</translation>
    </message>
    <message>
        <source>Finished: {steps} steps in {time}. The LoRA: {file}</source>
        <translation>完成：{steps} 步，用时 {time}。LoRA：{file}</translation>
    </message>
</context>
<context>
    <name>TrainingForm</name>
    <message>
        <source>Custom</source>
        <translation>自定义</translation>
    </message>
    <message>
        <source>SD1.5 character</source>
        <translation>SD1.5 角色</translation>
    </message>
    <message>
        <source>SD1.5 style</source>
        <translation>SD1.5 画风</translation>
    </message>
    <message>
        <source>SDXL</source>
        <translation>SDXL</translation>
    </message>
    <message>
        <source>fp32 (no mixed precision)</source>
        <translation>fp32（不使用混合精度）</translation>
    </message>
    <message>
        <source>Automatic</source>
        <translation>自动</translation>
    </message>
    <message>
        <source>Other…</source>
        <translation>其他…</translation>
    </message>
    <message>
        <source>Choose…</source>
        <translation>选择…</translation>
    </message>
    <message>
        <source>Advanced settings</source>
        <translation>高级设置</translation>
    </message>
    <message>
        <source>Train the text encoder too</source>
        <translation>同时训练文本编码器</translation>
    </message>
    <message>
        <source>same as UNet</source>
        <translation>与 UNet 相同</translation>
    </message>
    <message>
        <source>One prompt per line, e.g. a photo of sks person, smiling</source>
        <translation>每行一条提示词，例如 a photo of sks person, smiling</translation>
    </message>
    <message>
        <source>off</source>
        <translation>关闭</translation>
    </message>
    <message>
        <source>dim </source>
        <translation>维度 </translation>
    </message>
    <message>
        <source>alpha </source>
        <translation>Alpha </translation>
    </message>
    <message>
        <source>from epochs</source>
        <translation>按训练轮数</translation>
    </message>
    <message>
        <source>random</source>
        <translation>随机</translation>
    </message>
    <message>
        <source>only at the end</source>
        <translation>仅在结束时</translation>
    </message>
    <message>
        <source>never</source>
        <translation>从不</translation>
    </message>
    <message>
        <source>Preset</source>
        <translation>预设</translation>
    </message>
    <message>
        <source>Base model</source>
        <translation>基础模型</translation>
    </message>
    <message>
        <source>Trigger word</source>
        <translation>触发词</translation>
    </message>
    <message>
        <source>LoRA name</source>
        <translation>LoRA 名称</translation>
    </message>
    <message>
        <source>Save to</source>
        <translation>保存位置</translation>
    </message>
    <message>
        <source>Resolution</source>
        <translation>分辨率</translation>
    </message>
    <message>
        <source>Batch size</source>
        <translation>批量大小</translation>
    </message>
    <message>
        <source>Epochs</source>
        <translation>训练轮数</translation>
    </message>
    <message>
        <source>Max steps</source>
        <translation>最大步数</translation>
    </message>
    <message>
        <source>Network dim (rank)</source>
        <translation>网络维度 (rank)</translation>
    </message>
    <message>
        <source>Network alpha</source>
        <translation>网络 Alpha</translation>
    </message>
    <message>
        <source>UNet learning rate</source>
        <translation>UNet 学习率</translation>
    </message>
    <message>
        <source>Text encoder learning rate</source>
        <translation>文本编码器学习率</translation>
    </message>
    <message>
        <source>Scheduler</source>
        <translation>学习率调度器</translation>
    </message>
    <message>
        <source>Warm-up steps</source>
        <translation>预热步数</translation>
    </message>
    <message>
        <source>Save every N epochs</source>
        <translation>每 N 轮保存</translation>
    </message>
    <message>
        <source>Sample prompts</source>
        <translation>样图提示词</translation>
    </message>
    <message>
        <source>Sample every N epochs</source>
        <translation>每 N 轮生成样图</translation>
    </message>
    <message>
        <source>Text encoder</source>
        <translation>文本编码器</translation>
    </message>
    <message>
        <source>LoCon (3×3 convolutions)</source>
        <translation>LoCon（3×3 卷积）</translation>
    </message>
    <message>
        <source>Min-SNR gamma</source>
        <translation>Min-SNR gamma</translation>
    </message>
    <message>
        <source>Noise offset</source>
        <translation>噪声偏移</translation>
    </message>
    <message>
        <source>Flip images</source>
        <translation>镜像翻转图像</translation>
    </message>
    <message>
        <source>Shuffle caption tags</source>
        <translation>打乱标注标签</translation>
    </message>
    <message>
        <source>Keep first tags</source>
        <translation>固定开头标签数</translation>
    </message>
    <message>
        <source>Caption dropout</source>
        <translation>标注丢弃率</translation>
    </message>
    <message>
        <source>Caption files</source>
        <translation>标注文件</translation>
    </message>
    <message>
        <source>Gradient checkpointing</source>
        <translation>梯度检查点</translation>
    </message>
    <message>
        <source>Gradient accumulation</source>
        <translation>梯度累积</translation>
    </message>
    <message>
        <source>Base model precision</source>
        <translation>基础模型精度</translation>
    </message>
    <message>
        <source>Seed</source>
        <translation>随机种子</translation>
    </message>
    <message>
        <source>Clip skip</source>
        <translation>CLIP 终止层数</translation>
    </message>
    <message>
        <source>Smallest bucket side</source>
        <translation>分桶最小边长</translation>
    </message>
    <message>
        <source>Largest bucket side</source>
        <translation>分桶最大边长</translation>
    </message>
    <message>
        <source>Regularisation folder</source>
        <translation>正则化图像文件夹</translation>
    </message>
    <message>
        <source>Resume point every N steps</source>
        <translation>每 N 步保存断点</translation>
    </message>
    <message>
        <source>Train on</source>
        <translation>运算设备</translation>
    </message>
    <message>
        <source>Starting values for a kind of LoRA. The model, dataset and output stay as they are.</source>
        <translation>针对某类 LoRA 的初始参数。模型、数据集和保存位置保持不变。</translation>
    </message>
    <message>
        <source>The checkpoint the LoRA is trained on. It works best with this model and its relatives.</source>
        <translation>用于训练 LoRA 的模型。LoRA 与此模型及其衍生模型搭配效果最好。</translation>
    </message>
    <message>
        <source>A rare word put at the start of every caption, e.g. sks or ohwx: write it in a prompt to call up what was learned.</source>
        <translation>添加在每条标注开头的罕见词，例如 sks 或 ohwx：在提示词中写上它，即可调出学到的内容。</translation>
    </message>
    <message>
        <source>The file name of the LoRA (.safetensors) and of its settings (.toml).</source>
        <translation>LoRA 文件 (.safetensors) 及其设置文件 (.toml) 的文件名。</translation>
    </message>
    <message>
        <source>Where the LoRA is saved; the models/Lora folder makes it appear in the model browser.</source>
        <translation>LoRA 的保存位置；保存到 models/Lora 文件夹即可在“模型”面板中看到它。</translation>
    </message>
    <message>
        <source>Training size in pixels. 512 for SD1.5, 768 for SD2, 1024 for SDXL; images are bucketed by aspect ratio.</source>
        <translation>训练尺寸（像素）。SD1.5 用 512，SD2 用 768，SDXL 用 1024；图像会按宽高比分桶。</translation>
    </message>
    <message>
        <source>Images per step. Larger batches need more memory; lower the learning rate less than proportionally.</source>
        <translation>每步使用的图像数。批量越大越占内存；学习率应相应降低，但降幅要小于批量的增幅。</translation>
    </message>
    <message>
        <source>How many times every image (times its repeats) is seen.</source>
        <translation>每张图像（乘以其重复次数）被训练的遍数。</translation>
    </message>
    <message>
        <source>Stop after this many steps instead of counting epochs.</source>
        <translation>达到此步数后停止，而不按训练轮数计算。</translation>
    </message>
    <message>
        <source>The LoRA&apos;s capacity. 8–32 for a character, 32–128 for a style; larger files, slower learning.</source>
        <translation>LoRA 的容量。角色用 8–32，画风用 32–128；值越大，文件越大，学习越慢。</translation>
    </message>
    <message>
        <source>Scales the learned weights by alpha / dim. Half the dim is common; lower alpha means smaller updates.</source>
        <translation>按 alpha / dim 缩放学到的权重。通常取 dim 的一半；alpha 越小，每次更新幅度越小。</translation>
    </message>
    <message>
        <source>How fast the image model learns. 1e-4 is a good start; lower it if the loss becomes NaN or samples burn.</source>
        <translation>图像模型的学习速度。1e-4 是不错的起点；若损失变为 NaN 或样图出现烧图，请调低。</translation>
    </message>
    <message>
        <source>How fast the text encoder learns; usually a half or less of the UNet rate. Blank: the UNet rate.</source>
        <translation>文本编码器的学习速度；通常为 UNet 学习率的一半或更低。留空：与 UNet 学习率相同。</translation>
    </message>
    <message>
        <source>How the learning rate changes over the run. Cosine lowers it towards the end.</source>
        <translation>学习率在训练过程中的变化方式。cosine 会在临近结束时逐渐降低学习率。</translation>
    </message>
    <message>
        <source>Steps at the start during which the learning rate rises from zero.</source>
        <translation>训练开始时学习率从零逐步上升的步数。</translation>
    </message>
    <message>
        <source>Also save a LoRA every N epochs, to compare them later.</source>
        <translation>每 N 轮额外保存一个 LoRA，便于之后比较。</translation>
    </message>
    <message>
        <source>Images are generated from these prompts during training, to see what the LoRA learns.</source>
        <translation>训练期间会用这些提示词生成图像，以便查看 LoRA 学到了什么。</translation>
    </message>
    <message>
        <source>Generate the sample images every N epochs.</source>
        <translation>每 N 轮生成一次样图。</translation>
    </message>
    <message>
        <source>Training the text encoder helps a trigger word; SDXL usually trains the UNet only.</source>
        <translation>训练文本编码器有助于触发词生效；SDXL 通常只训练 UNet。</translation>
    </message>
    <message>
        <source>LoCon also trains the ResNet convolutions: more detail and texture, larger file. Off for a plain LoRA.</source>
        <translation>LoCon 还会训练 ResNet 卷积层：细节和质感更丰富，文件也更大。训练普通 LoRA 时请关闭。</translation>
    </message>
    <message>
        <source>Weights the loss by timestep so training converges faster. 5 is recommended; 0 turns it off.</source>
        <translation>按时间步为损失加权，使训练收敛更快。推荐值为 5；0 表示关闭。</translation>
    </message>
    <message>
        <source>Helps learn very dark or very bright images. 0.05–0.1; 0 turns it off.</source>
        <translation>有助于学习很暗或很亮的图像。建议 0.05–0.1；0 表示关闭。</translation>
    </message>
    <message>
        <source>Also trains on mirror images. Good for styles, bad for asymmetric characters and text.</source>
        <translation>同时用镜像图像训练。适合画风，不适合不对称的角色和文字。</translation>
    </message>
    <message>
        <source>Shuffles comma-separated tags each step so no tag order is learned.</source>
        <translation>每步打乱以逗号分隔的标签，避免模型学到标签顺序。</translation>
    </message>
    <message>
        <source>How many tags at the start stay in place when shuffling (1 keeps the trigger word first).</source>
        <translation>打乱时开头保持不动的标签数（设为 1 可让触发词始终在最前）。</translation>
    </message>
    <message>
        <source>Share of steps trained without a caption; helps the LoRA work without its trigger word.</source>
        <translation>不带标注训练的步数比例；有助于 LoRA 在不写触发词时也能生效。</translation>
    </message>
    <message>
        <source>The extension of the caption file next to each image.</source>
        <translation>每张图像旁标注文件的扩展名。</translation>
    </message>
    <message>
        <source>Recomputes activations instead of storing them: much less memory, about 30% slower.</source>
        <translation>重新计算激活值而非存储：大幅节省内存，速度约慢 30%。</translation>
    </message>
    <message>
        <source>Adds up this many batches before each update: a larger batch without more memory.</source>
        <translation>每次更新前累积这么多批次：不增加内存即可获得更大的批量。</translation>
    </message>
    <message>
        <source>Keeps the frozen base model in fp16 or bf16 to halve its memory. Choose fp32 if the loss becomes NaN.</source>
        <translation>以 fp16 或 bf16 载入冻结的基础模型，内存占用减半。若损失变为 NaN，请选择 fp32。</translation>
    </message>
    <message>
        <source>The same seed and settings give the same LoRA. 0 picks one and records it.</source>
        <translation>随机种子和设置相同，得到的 LoRA 也相同。0 表示随机选取并记录。</translation>
    </message>
    <message>
        <source>Use the text encoder&apos;s output this many layers from the end; 2 for most anime models.</source>
        <translation>使用文本编码器倒数第几层的输出；大多数二次元模型用 2。</translation>
    </message>
    <message>
        <source>Images are grouped into buckets of similar aspect ratio, from this side length…</source>
        <translation>图像按相近的宽高比分组到不同的桶中，边长从此值…</translation>
    </message>
    <message>
        <source>…to this one.</source>
        <translation>…到此值。</translation>
    </message>
    <message>
        <source>Optional images of the general class (e.g. other people) that keep the model from forgetting it.</source>
        <translation>可选的同类通用图像（例如其他人物），防止模型遗忘该类别。</translation>
    </message>
    <message>
        <source>Writes what a cancelled or crashed run needs to resume. 0: only at the end.</source>
        <translation>保存断点，供中止或崩溃的训练继续。0：仅在结束时保存。</translation>
    </message>
    <message>
        <source>Automatic picks the Apple GPU or NVIDIA GPU when there is one.</source>
        <translation>“自动”会在可用时选择 Apple GPU 或 NVIDIA GPU。</translation>
    </message>
    <message>
        <source>Choose the base model</source>
        <translation>选择基础模型</translation>
    </message>
    <message>
        <source>Checkpoints (*.safetensors)</source>
        <translation>模型 (*.safetensors)</translation>
    </message>
    <message>
        <source>Choose where to save the LoRA</source>
        <translation>选择 LoRA 的保存位置</translation>
    </message>
</context>
<context>
    <name>TrainingWindow</name>
    <message>
        <source>{s} s</source>
        <translation>{s} 秒</translation>
    </message>
    <message>
        <source>{m} min {s} s</source>
        <translation>{m} 分 {s} 秒</translation>
    </message>
    <message>
        <source>{m} min</source>
        <translation>{m} 分钟</translation>
    </message>
    <message>
        <source>{h} h {m} min</source>
        <translation>{h} 小时 {m} 分</translation>
    </message>
    <message>
        <source>Train LoRA</source>
        <translation>训练 LoRA</translation>
    </message>
    <message>
        <source>Dataset</source>
        <translation>数据集</translation>
    </message>
    <message>
        <source>Settings</source>
        <translation>设置</translation>
    </message>
    <message>
        <source>Start Training</source>
        <translation>开始训练</translation>
    </message>
    <message>
        <source>Save the settings next to the LoRA and start (⌘↩)</source>
        <translation>将设置保存到 LoRA 旁并开始训练 (⌘↩)</translation>
    </message>
    <message>
        <source>Resume</source>
        <translation>断点续训</translation>
    </message>
    <message>
        <source>Continue the last run of this LoRA from its last resume point</source>
        <translation>从此 LoRA 上次训练的最后一个断点继续</translation>
    </message>
    <message>
        <source>File</source>
        <translation>文件</translation>
    </message>
    <message>
        <source>Training</source>
        <translation>训练</translation>
    </message>
    <message>
        <source>Open Settings…</source>
        <translation>打开训练设置…</translation>
    </message>
    <message>
        <source>Save Settings As…</source>
        <translation>将训练设置另存为…</translation>
    </message>
    <message>
        <source>Choose Image Folder…</source>
        <translation>选择图像文件夹…</translation>
    </message>
    <message>
        <source>Save Caption</source>
        <translation>保存标注</translation>
    </message>
    <message>
        <source>Reveal Output Folder</source>
        <translation>打开输出文件夹</translation>
    </message>
    <message>
        <source>Close Window</source>
        <translation>关闭窗口</translation>
    </message>
    <message>
        <source>Resume Training</source>
        <translation>从断点继续训练</translation>
    </message>
    <message>
        <source>Save Now</source>
        <translation>立即保存</translation>
    </message>
    <message>
        <source>Sample Now</source>
        <translation>立即生成样图</translation>
    </message>
    <message>
        <source>Cancel Training…</source>
        <translation>中止训练…</translation>
    </message>
    <message>
        <source>“{text}” is not a number.</source>
        <translation>“{text}”不是数字。</translation>
    </message>
    <message>
        <source>There are no images to train on in {folder}.</source>
        <translation>{folder} 中没有可用于训练的图像。</translation>
    </message>
    <message>
        <source>There is no resume point for this LoRA in {folder}.</source>
        <translation>{folder} 中没有此 LoRA 的断点。</translation>
    </message>
    <message>
        <source>Replace the LoRA?</source>
        <translation>要替换 LoRA 吗？</translation>
    </message>
    <message>
        <source>{file} already exists. Training replaces it (and its resume point).</source>
        <translation>{file} 已存在。训练将替换该文件（及其断点）。</translation>
    </message>
    <message>
        <source>Replace</source>
        <translation>替换</translation>
    </message>
    <message>
        <source>Cannot save the settings to {file}: {error}</source>
        <translation>无法将设置保存到 {file}：{error}</translation>
    </message>
    <message>
        <source>Starting…</source>
        <translation>正在启动…</translation>
    </message>
    <message>
        <source>Settings saved to {file}</source>
        <translation>设置已保存到 {file}</translation>
    </message>
    <message>
        <source>The trainer could not be started: {error}</source>
        <translation>无法启动训练程序：{error}</translation>
    </message>
    <message>
        <source>Stop training now? A LoRA of the {steps} steps done so far is saved, and you can resume the run later.</source>
        <translation>要现在停止训练吗？已完成的 {steps} 步会保存为 LoRA，之后可以断点续训。</translation>
    </message>
    <message>
        <source>Cancel training?</source>
        <translation>要中止训练吗？</translation>
    </message>
    <message>
        <source>Cancel Training</source>
        <translation>中止训练</translation>
    </message>
    <message>
        <source>Keep Training</source>
        <translation>继续训练</translation>
    </message>
    <message>
        <source>Stopping: saving the steps so far…</source>
        <translation>正在停止：正在保存截至目前的训练结果…</translation>
    </message>
    <message>
        <source>The loss became NaN at step {step}</source>
        <translation>第 {step} 步时损失变为 NaN</translation>
    </message>
    <message>
        <source>Out of memory at step {step}</source>
        <translation>第 {step} 步时内存不足</translation>
    </message>
    <message>
        <source>The dataset cannot be used</source>
        <translation>数据集无法使用</translation>
    </message>
    <message>
        <source>A setting cannot be used</source>
        <translation>某项设置无法使用</translation>
    </message>
    <message>
        <source>The trainer stopped with an error</source>
        <translation>训练程序因错误而停止</translation>
    </message>
    <message>
        <source>The training process ended unexpectedly</source>
        <translation>训练进程意外结束</translation>
    </message>
    <message>
        <source>The trainer could not be started</source>
        <translation>无法启动训练程序</translation>
    </message>
    <message>
        <source>Lower the learning rate (halve it), or set the base model precision to fp32 (Settings &gt; Advanced).</source>
        <translation>请降低学习率（减半），或将基础模型精度设为 fp32（设置 &gt; 高级设置）。</translation>
    </message>
    <message>
        <source>Use a smaller batch size or resolution, or turn on gradient checkpointing; closing other apps helps too.</source>
        <translation>请减小批量大小或分辨率，或开启梯度检查点；关闭其他应用也有帮助。</translation>
    </message>
    <message>
        <source>Check the image folder: it needs readable images, and captions next to them.</source>
        <translation>请检查图像文件夹：其中需要有可读取的图像，且旁边附有标注文件。</translation>
    </message>
    <message>
        <source>Correct the setting named below and start again.</source>
        <translation>请修正下方指出的设置，然后重新开始。</translation>
    </message>
    <message>
        <source>This is usually the system running out of memory: use a smaller batch size or resolution, or turn on gradient checkpointing.</source>
        <translation>这通常是系统内存不足所致：请减小批量大小或分辨率，或开启梯度检查点。</translation>
    </message>
    <message>
        <source>Training failed ({kind})</source>
        <translation>训练失败（{kind}）</translation>
    </message>
    <message>
        <source>The last LoRA saved before this: {file}</source>
        <translation>此前最后保存的 LoRA：{file}</translation>
    </message>
    <message>
        <source>Resume continues from the last resume point.</source>
        <translation>“断点续训”会从最后一个断点继续。</translation>
    </message>
    <message>
        <source>Reading the folder…</source>
        <translation>正在读取文件夹…</translation>
    </message>
    <message>
        <source>Caption saved: {file}</source>
        <translation>标注已保存：{file}</translation>
    </message>
    <message>
        <source>No images yet: choose a folder, or drop one on this window.</source>
        <translation>尚无图像：请选择一个文件夹，或将文件夹拖放到此窗口。</translation>
    </message>
    <message>
        <source>No images found in this folder.</source>
        <translation>此文件夹中未找到图像。</translation>
    </message>
    <message>
        <source>{images} images × repeats = {repeated} steps per epoch</source>
        <translation>{images} 张图像 × 重复次数 = 每轮 {repeated} 步</translation>
    </message>
    <message>
        <source>Batch size {batch}: {per_epoch} steps per epoch, {total} steps in all</source>
        <translation>批量大小 {batch}：每轮 {per_epoch} 步，共 {total} 步</translation>
    </message>
    <message>
        <source>{count} without a caption (marked !)</source>
        <translation>{count} 张无标注（标有 !）</translation>
    </message>
    <message>
        <source>On the CPU a full-size model takes hours.</source>
        <translation>在 CPU 上训练完整大小的模型需要数小时。</translation>
    </message>
    <message>
        <source>The base model&apos;s type is not known: estimated as SD1.5.</source>
        <translation>无法识别基础模型的类型：按 SD1.5 估算。</translation>
    </message>
    <message>
        <source>Max steps overrides the epochs.</source>
        <translation>设置“最大步数”后将忽略训练轮数。</translation>
    </message>
    <message>
        <source>Above the model&apos;s native resolution: slower and more memory.</source>
        <translation>超出模型的原生分辨率：速度更慢，内存占用更多。</translation>
    </message>
    <message>
        <source>fp16/bf16 does not speed up the CPU.</source>
        <translation>fp16/bf16 无法提升 CPU 上的速度。</translation>
    </message>
    <message>
        <source>Choose a folder of images to see how long training takes.</source>
        <translation>选择图像文件夹后即可查看训练所需时间。</translation>
    </message>
    <message>
        <source>About {time}: {steps} steps at {speed} · memory about {memory} · LoRA file {size}</source>
        <translation>约 {time}：{steps} 步，速度 {speed} · 内存约 {memory} · LoRA 文件 {size}</translation>
    </message>
    <message>
        <source>A rough estimate from the model&apos;s size and the device; the first steps show the real speed.</source>
        <translation>根据模型大小和运算设备粗略估算；实际速度以最初几步为准。</translation>
    </message>
    <message>
        <source>Continue</source>
        <translation>继续</translation>
    </message>
    <message>
        <source>Pause</source>
        <translation>暂停</translation>
    </message>
    <message>
        <source>Cancel</source>
        <translation>取消</translation>
    </message>
    <message>
        <source>Open training settings</source>
        <translation>打开训练设置</translation>
    </message>
    <message>
        <source>Training settings (*.toml)</source>
        <translation>训练设置 (*.toml)</translation>
    </message>
    <message>
        <source>Save training settings</source>
        <translation>保存训练设置</translation>
    </message>
    <message>
        <source>Training is running</source>
        <translation>训练正在进行</translation>
    </message>
    <message>
        <source>Training goes on in the background when this window closes. Open it again from Training &gt; Train LoRA… to watch it.</source>
        <translation>关闭此窗口后，训练会在后台继续。可通过“训练 &gt; 训练 LoRA…”重新打开此窗口查看进度。</translation>
    </message>
    <message>
        <source>Keep Training in Background</source>
        <translation>在后台继续训练</translation>
    </message>
    <message>
        <source>Stay</source>
        <translation>不关闭</translation>
    </message>
</context>
</TS>
