"""The data set: label files, lists, photos and the face crops cut from them.

``labels`` reads and writes the SPEC's label and list lines (naming the file and line at fault);
``lists`` turns labels into list records, splits them by photo and finds the data root;
``generate`` is what the stages' ``gen_train_test.py`` run, and ``negatives`` samples the
non-face crops of stage 3. ``images`` reads photos as they are meant to be seen and cuts resized
grayscale crops; ``crop_cache`` keeps a list's crops on disk; ``dataset`` and ``transforms`` give
them to torch. Only ``dataset`` and ``transforms.ToTensor`` need torch.
"""
