"""Write rmkit's demo data: ``rmkit/demo_data/preferences.jsonl`` and ``prompts.jsonl``.

Everything here was written for rmkit; no dataset is copied. Each topic is a question
with a good answer (helpful, correct, polite), a one-sentence summary and a worse
on-topic answer (wrong or careless). Pairs combine them with seeded choices: the chosen
reply is always the good one; the rejected reply fails in one of several realistic ways
(wrong, off-topic, rude, needless refusal, vague, truncated, stuck repeating itself; in
multi-turn pairs also ignoring the follow-up's instruction, answering the earlier question
again, or a rude close). Several of these are longer than the chosen reply, so length
alone does not separate the two. Rerun it after editing the bank; the output is deterministic.

    python scripts/make_demo_data.py
"""

from __future__ import annotations

import json
import random
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rmkit.conversation import message, reply_message, turn_message  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "rmkit" / "demo_data"
SEED = 1234

# (category, question, good answer, one-sentence summary, worse on-topic answer)
TOPICS = [
    (
        "science",
        "Why is the sky blue?",
        "The sky looks blue because of Rayleigh scattering. Sunlight contains all colours, but the molecules in the air scatter short wavelengths such as blue much more strongly than long wavelengths such as red, so blue light reaches your eyes from every part of the sky.",
        "Air molecules scatter blue sunlight much more than red light, so the whole sky glows blue.",
        "The sky is blue because it reflects the colour of the oceans, which cover most of the Earth's surface.",
    ),
    (
        "science",
        "What causes the seasons on Earth?",
        "Seasons are caused by the tilt of Earth's axis, about 23.5 degrees. As Earth orbits the Sun, each hemisphere takes turns leaning toward it: the hemisphere tilted toward the Sun gets more direct sunlight and longer days (summer), and the one tilted away gets less (winter).",
        "Earth's tilted axis makes each hemisphere receive more or less direct sunlight during the year.",
        "The seasons happen because Earth moves much closer to the Sun in summer and far away from it in winter.",
    ),
    (
        "science",
        "How do plants make their food?",
        "Plants make their food through photosynthesis. Chlorophyll in their leaves captures sunlight, and the plant uses that energy to turn carbon dioxide from the air and water from the soil into glucose, a sugar, releasing oxygen as a by-product.",
        "Through photosynthesis: they use sunlight to turn carbon dioxide and water into sugar and oxygen.",
        "Plants get all of their food ready-made from the soil through their roots, the same way we eat meals.",
    ),
    (
        "science",
        "At what temperature does water boil?",
        "At sea level, pure water boils at 100 degrees Celsius (212 degrees Fahrenheit). At higher altitudes the air pressure is lower, so water boils at a lower temperature, which is why cooking pasta takes longer in the mountains.",
        "At 100 degrees Celsius (212 degrees Fahrenheit) at sea level, and a little lower at high altitude.",
        "Water always boils at exactly 90 degrees Celsius, no matter where you are.",
    ),
    (
        "science",
        "How far away is the Moon?",
        "The Moon is on average about 384,400 kilometres (roughly 238,900 miles) from Earth. Its orbit is slightly elliptical, so the distance varies between about 363,000 and 405,000 kilometres.",
        "About 384,400 kilometres (238,900 miles) on average.",
        "The Moon is only about 40,000 kilometres away, roughly the distance around the Earth's equator.",
    ),
    (
        "science",
        "What is the difference between a virus and a bacterium?",
        "Bacteria are single-celled living organisms that can reproduce on their own, and many of them are harmless or even helpful. Viruses are much smaller and cannot reproduce by themselves: they must infect a host cell and use it to make copies. That is also why antibiotics work against bacteria but not against viruses.",
        "Bacteria are living cells that reproduce on their own, while viruses need a host cell and are not killed by antibiotics.",
        "There is no real difference: viruses are just small bacteria, and antibiotics cure both equally well.",
    ),
    (
        "science",
        "Why do we have tides?",
        "Tides are caused mainly by the Moon's gravity. It pulls a little harder on the side of Earth facing it than on the far side, which raises two bulges of ocean water. As Earth rotates through these bulges, most coasts get two high tides and two low tides a day. The Sun adds a smaller effect of its own.",
        "The Moon's gravity raises two bulges of ocean water that Earth rotates through, giving most coasts two high tides a day.",
        "Tides are caused by the wind pushing ocean water toward the shore every morning and evening.",
    ),
    (
        "science",
        "What is DNA?",
        "DNA (deoxyribonucleic acid) is the molecule that carries the genetic instructions of living things. It is a double helix built from four bases, A, T, C and G, and the order of those bases encodes the genes that tell cells which proteins to make.",
        "DNA is the double-helix molecule whose sequence of four bases stores an organism's genes.",
        "DNA is a protein found in the blood that decides a person's blood type.",
    ),
    (
        "science",
        "How does a rainbow form?",
        "A rainbow forms when sunlight enters raindrops, bends (refracts), reflects off the back of each drop and bends again on the way out. Each colour bends by a slightly different amount, so white light spreads into a band of colours. You see one when the Sun is behind you and rain is falling in front of you.",
        "Raindrops bend and reflect sunlight, splitting it into its colours, which you see with the Sun behind you.",
        "Rainbows appear when sunlight bounces off clouds that are full of coloured dust.",
    ),
    (
        "science",
        "How fast does light travel?",
        "In a vacuum, light travels at exactly 299,792,458 metres per second, which is about 300,000 kilometres per second. Light from the Sun takes roughly 8 minutes and 20 seconds to reach Earth.",
        "About 300,000 kilometres per second (exactly 299,792,458 m/s) in a vacuum.",
        "Light travels at about 300,000 kilometres per hour, so sunlight takes several days to reach us.",
    ),
    (
        "science",
        "Why does ice float on water?",
        "Ice floats because it is less dense than liquid water. When water freezes, its molecules lock into an open hexagonal crystal held together by hydrogen bonds, which keeps them farther apart than in the liquid. Ice is about 9 percent less dense than water, so it floats.",
        "Frozen water forms an open crystal that is about 9 percent less dense than liquid water.",
        "Ice floats only because of the air bubbles trapped inside it; perfectly clear ice sinks to the bottom.",
    ),
    (
        "science",
        "What is the chemical symbol for gold?",
        "The chemical symbol for gold is Au, from its Latin name aurum. Gold's atomic number is 79.",
        "It is Au, from the Latin word aurum.",
        "The chemical symbol for gold is Ag.",
    ),
    (
        "science",
        "How many bones are in the adult human body?",
        "An adult human body usually has 206 bones. Babies are born with around 270, but many of them fuse together as the child grows, for example in the skull and at the base of the spine.",
        "Usually 206, fewer than a baby's roughly 270 because some bones fuse.",
        "An adult has about 500 bones, and babies have fewer because their bones have not grown yet.",
    ),
    (
        "science",
        "What is the difference between weather and climate?",
        "Weather is the state of the atmosphere at a particular time and place, such as today's rain or tomorrow's temperature. Climate is the average pattern of weather in a region over a long period, usually 30 years or more. As the saying goes, climate is what you expect and weather is what you get.",
        "Weather is the day-to-day conditions; climate is the long-term average of them.",
        "Weather and climate are the same thing; climate is just the scientific word for today's weather.",
    ),
    (
        "geography",
        "What is the capital of Australia?",
        "The capital of Australia is Canberra. Many people guess Sydney or Melbourne, but Canberra was built as a compromise between those two cities and became the seat of government in 1927.",
        "Canberra, not Sydney or Melbourne.",
        "The capital of Australia is Sydney, its largest and best-known city.",
    ),
    (
        "geography",
        "What is the longest river in the world?",
        "The Nile, at about 6,650 kilometres, is usually listed as the longest river in the world. Some measurements put the Amazon slightly ahead, so geographers still debate it, but the Amazon is clearly the largest river by the amount of water it carries.",
        "Usually the Nile, at about 6,650 kilometres, though some measurements favour the Amazon.",
        "The longest river in the world is the Mississippi, which flows for about 12,000 kilometres.",
    ),
    (
        "history",
        "When did World War II end?",
        "World War II ended in 1945. In Europe, Germany surrendered on 8 May 1945 (V-E Day), and in the Pacific, Japan announced its surrender in August and signed the formal surrender on 2 September 1945.",
        "In 1945: on 8 May in Europe and on 2 September in the Pacific.",
        "World War II ended in 1939, when the United States and Germany signed a peace treaty.",
    ),
    (
        "history",
        "Who painted the Mona Lisa?",
        "The Mona Lisa was painted by Leonardo da Vinci, probably between about 1503 and 1519. It hangs in the Louvre in Paris and is one of the most visited paintings in the world.",
        "Leonardo da Vinci, in the early 1500s.",
        "The Mona Lisa was painted by Vincent van Gogh while he lived in Paris.",
    ),
    (
        "geography",
        "How many continents are there?",
        "By the convention most often taught in English-speaking countries there are seven continents: Africa, Antarctica, Asia, Australia (or Oceania), Europe, North America and South America. Some countries count fewer, for example by treating the Americas as one continent.",
        "Usually seven, although some conventions combine a few of them.",
        "There are twelve continents, including Greenland and the Arctic.",
    ),
    (
        "geography",
        "What is the tallest mountain in the world?",
        "Mount Everest, on the border between Nepal and China, is the highest mountain above sea level at about 8,849 metres (29,032 feet). Measured from its base on the ocean floor, Mauna Kea in Hawaii is taller, but most of it is underwater.",
        "Mount Everest, about 8,849 metres above sea level.",
        "The tallest mountain in the world is K2, in the Alps, at about 5,000 metres.",
    ),
    (
        "history",
        "Why did the Roman Empire fall?",
        "Historians point to several causes working together rather than a single one. The Western Roman Empire was weakened by political instability and civil wars, economic trouble and heavy taxes, the cost of defending very long borders, and pressure from migrating peoples such as the Goths and Vandals. The last Western emperor was deposed in 476, while the Eastern (Byzantine) Empire lasted until 1453.",
        "A mix of instability, economic strain and outside pressure ended the Western Empire in 476, while the Eastern half lasted until 1453.",
        "The Roman Empire fell in a single day in 1066, when a volcano destroyed the city of Rome.",
    ),
    (
        "geography",
        "What language do people speak in Brazil?",
        "The official and most widely spoken language of Brazil is Portuguese, a legacy of Portuguese colonisation. Brazilian Portuguese differs a little from the Portuguese of Portugal in pronunciation and vocabulary, much like American and British English.",
        "Portuguese.",
        "Most people in Brazil speak Spanish, like the rest of South America.",
    ),
    (
        "geography",
        "What is the largest ocean?",
        "The Pacific Ocean is the largest and deepest ocean. It covers about 165 million square kilometres, more than all of Earth's land put together, and contains the Mariana Trench, the deepest known point of the oceans.",
        "The Pacific, which is larger than all of Earth's land combined.",
        "The Atlantic Ocean is the largest ocean and covers about half of the planet.",
    ),
    (
        "cooking",
        "How do I boil an egg?",
        "Put the eggs in a pot and cover them with cold water by about 2 centimetres. Bring the water to a boil, then lower the heat to a gentle simmer. Cook for about 6 minutes for a jammy yolk or 9 to 12 minutes for hard-boiled. Move the eggs into cold water right away so they stop cooking and peel more easily.",
        "Simmer them for 6 minutes for soft or 9 to 12 for hard, then cool them in cold water.",
        "Put the eggs in the microwave for about 5 minutes on full power and they will come out perfectly boiled.",
    ),
    (
        "cooking",
        "How can I keep a cut avocado from turning brown?",
        "Browning happens when the flesh reacts with oxygen. Brush the cut surface with lemon or lime juice, leave the pit in if you can, and wrap the avocado tightly in plastic wrap or put it in an airtight container in the fridge. It should stay green for about a day.",
        "Brush it with lemon juice, wrap it airtight and keep it in the fridge.",
        "Leave the cut avocado uncovered on the counter so it can breathe; fresh air keeps it green.",
    ),
    (
        "cooking",
        "What can I use instead of eggs in baking?",
        "It depends on the egg's job in the recipe. For binding, mix 1 tablespoon of ground flaxseed with 3 tablespoons of water per egg and let it thicken for a few minutes. For moisture in cakes and muffins, use about a quarter cup of mashed banana or applesauce per egg. For lift, add a little extra baking powder.",
        "A flax egg, mashed banana or applesauce, depending on whether the egg binds or adds moisture.",
        "Replace each egg with a cup of vegetable oil; it works the same way in every recipe.",
    ),
    (
        "cooking",
        "How long should a steak rest after cooking?",
        "Rest a steak for about 5 to 10 minutes, or roughly half its cooking time, on a warm plate loosely covered with foil. Resting lets the juices settle back into the meat, so less of them run out when you cut it.",
        "About 5 to 10 minutes, loosely covered, so the juices settle.",
        "Never rest a steak; cut it immediately or all the juices will evaporate.",
    ),
    (
        "cooking",
        "How do I cook rice on the stove?",
        "Rinse 1 cup of white rice until the water runs mostly clear. Put it in a pot with about 1.5 cups of water and a pinch of salt, bring it to a boil, then cover, turn the heat to low and cook for 15 to 18 minutes. Take it off the heat, let it stand covered for 5 minutes, and fluff it with a fork.",
        "Rinse it, use about 1.5 cups of water per cup of rice, simmer covered for 15 to 18 minutes and let it rest for 5.",
        "Use 5 cups of water for each cup of rice and boil it uncovered for an hour until it is soft.",
    ),
    (
        "cooking",
        "Why does bread dough need to rise?",
        "Rising gives the yeast time to ferment sugars in the flour and produce carbon dioxide. The gas is trapped by the gluten network in the dough, which makes the bread light and airy, and the fermentation also develops flavour.",
        "Yeast makes carbon dioxide that the gluten traps, which makes the bread light and flavourful.",
        "Dough rises because flour soaks up oxygen from the air, and the longer it rises the heavier the bread becomes.",
    ),
    (
        "cooking",
        "How do I make a simple vinaigrette?",
        "Whisk together 3 parts oil and 1 part vinegar, for example 3 tablespoons of olive oil and 1 tablespoon of red wine vinegar. Add a pinch of salt, some pepper and half a teaspoon of mustard, which helps the dressing stay mixed. Taste it and adjust with a little honey or more vinegar.",
        "Whisk 3 parts oil with 1 part vinegar, plus salt, pepper and a little mustard.",
        "Mix equal parts vinegar and water with a spoon of sugar; vinaigrette does not contain oil.",
    ),
    (
        "health",
        "How much water should I drink each day?",
        "A common guideline is about 2 litres a day for many adults, but needs vary with body size, activity and climate, and food provides some water too. A practical check is to drink when you are thirsty and aim for pale yellow urine, drinking more in hot weather or when you exercise. People with kidney or heart conditions should follow their doctor's advice.",
        "Roughly 2 litres for many adults, more in heat or during exercise, with pale yellow urine as a good sign.",
        "Everyone must drink exactly 10 litres of water a day, whatever their size or activity.",
    ),
    (
        "health",
        "How can I fall asleep faster?",
        "Keep a regular sleep schedule, even on weekends, and avoid caffeine after early afternoon. Put screens away about an hour before bed, keep your bedroom cool, dark and quiet, and try a calming routine such as reading or slow breathing. If you are still awake after about 20 minutes, get up and do something relaxing until you feel sleepy.",
        "Keep a regular schedule, skip late caffeine and screens, and keep the bedroom cool and dark.",
        "A strong coffee right before bed is the best way to fall asleep quickly.",
    ),
    (
        "home",
        "How do I get a red wine stain out of a carpet?",
        "Act quickly: blot the stain (don't rub it) with a clean cloth to soak up as much wine as possible. Then dab on a mix of one tablespoon of dish soap and one tablespoon of white vinegar in two cups of warm water, blot again, and rinse with cold water. Test any cleaner on a hidden spot first.",
        "Blot it right away, dab it with dish soap, vinegar and warm water, then rinse with cold water.",
        "Scrub the stain hard with hot water and bleach; the harder you rub, the faster it disappears.",
    ),
    (
        "health",
        "How often should I replace my toothbrush?",
        "Dentists generally recommend replacing your toothbrush, or your electric brush head, every three to four months, or sooner if the bristles are frayed. It is also a good idea to replace it after you have been ill.",
        "Every three to four months, or sooner if the bristles fray.",
        "A toothbrush lasts about five years as long as you rinse it after use.",
    ),
    (
        "career",
        "Do you have any tips for a job interview?",
        "Research the company and the role so you can explain why you want the job. Prepare short examples of your achievements using the situation, action and result structure. Practise answers to common questions, arrive a few minutes early, and have one or two thoughtful questions ready for the end. Afterwards, send a brief thank-you note.",
        "Research the company, prepare concrete examples, arrive early and bring good questions.",
        "Don't prepare at all, arrive a little late so you look busy, and never ask any questions.",
    ),
    (
        "health",
        "How should I start running as a beginner?",
        "Start with a walk-run plan: for example, alternate 1 minute of easy running with 2 minutes of walking for 20 to 30 minutes, three times a week. Increase the running part gradually over several weeks, and keep the pace easy enough that you can still talk. Good shoes and rest days help prevent injuries.",
        "Alternate easy running and walking three times a week and build up slowly.",
        "Beginners should run a full marathon in their first week to build endurance quickly.",
    ),
    (
        "money",
        "How can I save money on groceries?",
        "Plan your meals for the week and shop with a list so you buy only what you need. Compare unit prices, choose store brands, buy produce that is in season, and cook larger batches so leftovers become lunches. Try not to shop when you are hungry, which tends to lead to impulse buys.",
        "Plan meals, shop with a list, compare unit prices and choose store brands.",
        "Buy everything in single-serving packages and shop every day; that is the cheapest way.",
    ),
    (
        "money",
        "How do I make a budget?",
        "List your monthly income after tax, then track your spending for a month to see where the money goes. Group expenses into needs, wants and savings; the 50/30/20 rule is a simple starting point. Set a limit for each group, automate a transfer to savings on payday, and review the budget every month.",
        "Track income and spending, split them into needs, wants and savings, and review it monthly.",
        "A budget means spending all of your income at the start of the month so you don't lose track of it.",
    ),
    (
        "home",
        "How do I change a flat tyre?",
        "Park on flat ground away from traffic, switch on your hazard lights and apply the parking brake. Loosen the wheel nuts slightly while the tyre is still on the ground, then raise the car with the jack at the point shown in your manual. Remove the nuts and the wheel, fit the spare, hand-tighten the nuts, lower the car and tighten them fully in a star pattern. Check the spare's pressure soon afterwards.",
        "Loosen the nuts, jack up the car, fit the spare, and tighten the nuts in a star pattern once it is down.",
        "Jack the car as high as it goes first, then kick the wheel until it falls off; the nuts don't need loosening.",
    ),
    (
        "home",
        "How often should I water a succulent?",
        "Succulents store water in their leaves, so they like to dry out between waterings. Water thoroughly, then wait until the soil is completely dry, which is often every one to two weeks in summer and every three to four weeks in winter. Use a pot with a drainage hole, because soggy soil causes root rot.",
        "Water deeply only when the soil is fully dry, roughly every one to two weeks in summer and less in winter.",
        "Water succulents twice a day and keep them in a pot without drainage so the soil stays wet.",
    ),
    (
        "coding",
        "How do I reverse a string in Python?",
        "The simplest way is slicing with a step of -1:\n\ntext = \"hello\"\nreversed_text = text[::-1]  # 'olleh'\n\nYou can also write ''.join(reversed(text)), which gives the same result.",
        "Use slicing: text[::-1].",
        "Call text.reverse(); Python strings have a reverse method that changes them in place.",
    ),
    (
        "coding",
        "What is the difference between a list and a tuple in Python?",
        "Both hold ordered sequences of items, but a list is mutable, so you can add, remove or change items, while a tuple cannot be changed once it is created. Tuples suit fixed groups of values such as coordinates, and because they are immutable they can be used as dictionary keys.",
        "Lists can be changed after they are created and tuples cannot, so tuples can be dictionary keys.",
        "Lists can only hold numbers, while tuples can only hold strings.",
    ),
    (
        "coding",
        "What does the HTTP status code 404 mean?",
        "404 Not Found means the server was reached but could not find the requested page or resource. It usually comes from a mistyped URL, a page that was moved or deleted, or a broken link. It is a client error, unlike the 5xx codes, which mean the server itself failed.",
        "The server is reachable, but the page or resource you asked for does not exist there.",
        "404 means the server has crashed and the whole website is permanently offline.",
    ),
    (
        "coding",
        "How do I undo my last git commit?",
        "If you have not pushed it yet, run git reset --soft HEAD~1 to undo the commit but keep its changes staged, or git reset --hard HEAD~1 to throw the changes away (careful: that deletes them). If the commit is already pushed and shared, use git revert HEAD, which adds a new commit that undoes it without rewriting history.",
        "Use git reset --soft HEAD~1 if it is not pushed yet, or git revert HEAD if it is already shared.",
        "Delete the .git folder and run git init again; that is the normal way to undo a commit.",
    ),
    (
        "coding",
        "What is a for loop?",
        'A for loop repeats a block of code once for each item in a sequence. In Python, for example:\n\nfor name in ["Ana", "Ben"]:\n    print("Hello", name)\n\nprints a greeting for each name. Loops save you from writing the same code over and over.',
        "It runs a block of code once for each item in a sequence.",
        "A for loop is a way to run a program on four computers at the same time.",
    ),
    (
        "coding",
        "How do I read a file line by line in Python?",
        'Open it in a with statement and loop over the file object:\n\nwith open("data.txt", encoding="utf-8") as f:\n    for line in f:\n        print(line.rstrip())\n\nThe with block closes the file for you, and the loop reads one line at a time, so it works for large files too.',
        "Open it with a with statement and loop over the file object.",
        "Python cannot read a file line by line; you have to load the whole file with read() and split it yourself.",
    ),
    (
        "coding",
        "What is the difference between == and is in Python?",
        "== checks whether two objects have equal values, while is checks whether they are the very same object in memory. For example, [1, 2] == [1, 2] is True, but [1, 2] is [1, 2] is False because they are two separate lists. Use is mainly to compare with None.",
        "== compares values and is compares identity; is is mostly used with None.",
        "They are exactly the same; is is just a more readable way to write ==.",
    ),
    (
        "coding",
        "What is SQL used for?",
        "SQL (Structured Query Language) is the standard language for working with relational databases. You use it to create tables, insert and update rows, and query data; for example, SELECT name FROM users WHERE age > 30; returns the names of users older than 30.",
        "It is the language for creating, changing and querying relational databases.",
        "SQL is a programming language used mainly to design the visual layout of web pages.",
    ),
    (
        "coding",
        "How do I center a div in CSS?",
        "A reliable modern way is flexbox on the parent element:\n\n.parent {\n  display: flex;\n  justify-content: center;\n  align-items: center;\n}\n\nThis centers the child both horizontally and vertically. For horizontal centering only, a block with a fixed width can use margin: 0 auto.",
        "Give the parent display: flex with justify-content and align-items set to center.",
        'Add the attribute center="true" to the div, because CSS has no way to center elements.',
    ),
    (
        "coding",
        "What is recursion?",
        "Recursion is when a function solves a problem by calling itself on a smaller version of the same problem. Every recursive function needs a base case that stops the calls. For example, factorial(n) returns 1 when n is 0 and otherwise returns n * factorial(n - 1).",
        "A function calling itself on smaller versions of a problem until it reaches a base case.",
        "Recursion means running the same program again after it crashes.",
    ),
    (
        "tech",
        "What does a CPU do?",
        "The CPU (central processing unit) is the part of a computer that carries out program instructions: it does arithmetic, makes comparisons and moves data, billions of times per second. Modern CPUs have several cores, so they can work on several tasks at once.",
        "It carries out program instructions, doing the calculations and decisions a computer makes.",
        "The CPU is the part of the computer that stores your files permanently, like a hard drive.",
    ),
    (
        "math",
        "What is 15% of 80?",
        "15% of 80 is 12. You can compute it as 0.15 times 80, or take 10% (which is 8) and add half of that (4).",
        "It is 12.",
        "15% of 80 is 15.",
    ),
    (
        "math",
        "What is the area of a circle with a radius of 3?",
        "The area of a circle is pi times the radius squared. With a radius of 3 that is 9 times pi, or about 28.27 square units.",
        "It is 9 pi, about 28.27 square units.",
        "The area is 2 times pi times 3, about 18.85, because the area of a circle is 2 pi r.",
    ),
    (
        "math",
        "How do I convert Celsius to Fahrenheit?",
        "Multiply the temperature in Celsius by 9/5 (or 1.8) and add 32. For example, 20 degrees Celsius times 1.8 is 36, and 36 plus 32 gives 68 degrees Fahrenheit.",
        "Multiply by 1.8 and add 32, so 20 degrees Celsius is 68 degrees Fahrenheit.",
        "Just double the Celsius number, so 20 degrees Celsius is 40 degrees Fahrenheit.",
    ),
    (
        "math",
        "Is 91 a prime number?",
        "No, 91 is not prime: it equals 7 times 13. It is a classic trick question, because 91 is odd and is not divisible by 2, 3 or 5.",
        "No, because 91 is 7 times 13.",
        "Yes, 91 is prime because it is odd and cannot be divided by 3 or 5.",
    ),
    (
        "math",
        "What is the Pythagorean theorem?",
        "In a right triangle, the square of the hypotenuse (the side opposite the right angle) equals the sum of the squares of the other two sides: a squared plus b squared equals c squared. For example, a triangle with legs of 3 and 4 has a hypotenuse of 5, because 9 + 16 = 25.",
        "In a right triangle, a squared plus b squared equals c squared, where c is the hypotenuse.",
        "It says that the three angles of any triangle add up to 360 degrees.",
    ),
    (
        "math",
        "How do I calculate an average?",
        "Add up all the values and divide by how many values there are. For example, the average of 4, 8 and 9 is (4 + 8 + 9) / 3 = 21 / 3 = 7.",
        "Sum the values and divide by how many there are.",
        "Take the largest value and divide it by two, so the average of 4, 8 and 9 is 4.5.",
    ),
    (
        "money",
        "What is compound interest?",
        "Compound interest is interest earned on both the original amount and the interest already added. For example, $1,000 at 5% a year grows to $1,050 after one year and $1,102.50 after two, because the second year's interest is also paid on the first year's $50. Over long periods this makes savings grow much faster than simple interest.",
        "Interest earned on earlier interest as well as on the original amount.",
        "Compound interest is a one-time fee that banks charge when you open an account.",
    ),
    (
        "math",
        "What is the square root of 144?",
        'The square root of 144 is 12, because 12 times 12 is 144. (-12 squared is also 144, but "the square root" usually means the positive one.)',
        "It is 12.",
        "The square root of 144 is 72, because 144 divided by 2 is 72.",
    ),
    (
        "writing",
        'What is the difference between "affect" and "effect"?',
        'In most cases "affect" is a verb meaning to influence, and "effect" is a noun meaning a result. For example: "The weather affected my mood" and "The weather had an effect on my mood." A handy trick: Affect is the Action, Effect is the End result.',
        'Usually "affect" is the verb (to influence) and "effect" is the noun (the result).',
        "They mean exactly the same thing, so you can use either word anywhere.",
    ),
    (
        "writing",
        "Can you suggest a title for a blog post about learning to bake bread?",
        "Here are a few options:\n1. Flour, Water, Patience: My First Loaf\n2. Rising to the Occasion: Learning to Bake Bread\n3. From Flat Failures to Fluffy Loaves\nFor a how-to post the second one works well; for a personal story, try the first.",
        'How about "Rising to the Occasion: Learning to Bake Bread"?',
        "Title: Blog Post About Bread, Part 1.",
    ),
    (
        "writing",
        "How do I write a polite email asking for a deadline extension?",
        "Keep it short, honest and specific. For example:\n\nSubject: Request for a short extension\n\nDear Dr. Lee,\nI am working on the report due on Friday, but a family matter has put me behind schedule. Would it be possible to submit it by Tuesday instead? The research is done and I only need to finish the analysis.\nThank you for considering my request.\nBest regards,\nSam",
        "Briefly explain the reason, propose a specific new date and thank them for considering it.",
        'Just write "I need more time, give me until next month." There is no need to explain or to be polite.',
    ),
    (
        "writing",
        "What is a haiku?",
        "A haiku is a short poem form from Japan with three lines of 5, 7 and 5 syllables, traditionally about nature or a season. For example:\nAn old silent pond\nA frog jumps into the pond\nSplash! Silence again",
        "A three-line poem of 5, 7 and 5 syllables, often about nature.",
        "A haiku is a long rhyming poem of fourteen lines, usually about love.",
    ),
    (
        "writing",
        "Can you explain what a metaphor is?",
        'A metaphor describes something by saying it is something else, to highlight a quality they share, without using "like" or "as". For example, "Time is a thief" suggests that time takes things from us. A simile makes the comparison explicit instead: "Time is like a thief."',
        'A figure of speech that says one thing is another, as in "time is a thief".',
        'A metaphor is any sentence that uses the word "like" or "as".',
    ),
    (
        "writing",
        "How can I improve my vocabulary?",
        "Read regularly, especially books and articles a little above your current level, and look up unfamiliar words in context. Keep a list of new words and review them with flashcards or a spaced-repetition app. Most importantly, use each new word in your own writing or conversation within a few days so it sticks.",
        "Read widely, note new words, review them and use them yourself soon after.",
        "Memorise the dictionary in alphabetical order; reading books does not help your vocabulary.",
    ),
    (
        "writing",
        'Please translate "Good morning, how are you?" into Spanish.',
        'In Spanish that is: "Buenos días, ¿cómo estás?" If you are speaking formally, for example to someone you don\'t know well, say "¿cómo está usted?" instead.',
        '"Buenos días, ¿cómo estás?"',
        '"Buenas noches, ¿dónde está el baño?"',
    ),
    (
        "writing",
        "Can you summarize the plot of Romeo and Juliet?",
        "In Shakespeare's Romeo and Juliet, two young lovers from feuding families in Verona, the Montagues and the Capulets, marry in secret. After Romeo kills Juliet's cousin Tybalt in a fight, he is banished. Juliet takes a potion to fake her death, but the message explaining the plan never reaches Romeo, who poisons himself at her tomb. Juliet wakes, finds him dead and kills herself, and their deaths finally reconcile the two families.",
        "Two young lovers from feuding families marry in secret, and a chain of misunderstandings ends in both their deaths.",
        "Romeo and Juliet is a comedy by Charles Dickens in which two friends open a bakery in London and live happily ever after.",
    ),
    (
        "career",
        "How do I write a good cover letter?",
        "Address it to a named person if you can, and open with the role you are applying for and why it interests you. In one or two paragraphs, connect two or three of your strongest achievements to the job's requirements, with concrete results. Keep it to one page, match the company's tone, and close by thanking the reader and inviting them to discuss your application.",
        "Keep it to one page, tie your best achievements to the job, and close politely.",
        "Copy your CV word for word into the letter and make it at least five pages long so they see everything you have done.",
    ),
    (
        "travel",
        "What should I pack for a weekend hiking trip?",
        "Bring layered clothing with a waterproof jacket, sturdy broken-in boots, a map and a charged phone, enough water or a filter, high-energy food, sunscreen, a hat, a headlamp and a small first-aid kit. If you are camping, add a tent, a sleeping bag and a sleeping pad suited to the expected temperatures. Tell someone your route and when you plan to be back.",
        "Layers, a rain jacket, good boots, a map, water, food, sun protection, a headlamp and a first-aid kit.",
        "Just bring your phone; you can buy water along the trail, and sandals are fine on any terrain.",
    ),
    (
        "tech",
        "How can I make my phone battery last longer?",
        "Lower the screen brightness or use auto-brightness, turn on battery-saver mode, and restrict apps that use location or refresh in the background. Switch off Bluetooth and Wi-Fi scanning when you don't need them, and keep the phone out of extreme heat, which wears the battery out faster.",
        "Dim the screen, use battery saver, limit background apps and keep the phone out of the heat.",
        "Keep the brightness at maximum all the time; a bright screen actually charges the battery.",
    ),
    (
        "education",
        "What is the best way to learn a new language?",
        "Combine regular practice with real use. Study a little every day rather than a lot once a week, learn the most common words first, and review them with spaced-repetition flashcards. Listen to podcasts or shows in the language, and start speaking early, for example with a tutor or a language-exchange partner, even if you make mistakes.",
        "Practise a little every day, learn common words first, listen a lot and start speaking early.",
        "Study only grammar rules for a few years before you try to speak; talking too early ruins your accent.",
    ),
    (
        "tech",
        "How do I create a strong password?",
        'Use a long password, at least 12 to 16 characters; a passphrase of four or more random words, such as "copper-lantern-river-mango", works well. Don\'t reuse passwords across sites, and avoid personal details like birthdays. A password manager can create and remember unique passwords for you, and two-factor authentication adds another layer of protection.',
        "Use a long, unique passphrase, a password manager and two-factor authentication.",
        "Use your pet's name followed by 123 and reuse it everywhere so you never forget it.",
    ),
    (
        "education",
        "What is a good way to prepare for an exam?",
        "Start early and spread your studying over several days instead of cramming. Test yourself with practice questions and flashcards rather than only rereading notes, because actively recalling information builds memory. Explain tricky topics out loud as if teaching someone, take short breaks, and get a good night's sleep before the exam.",
        "Study over several days, test yourself actively and sleep well before the exam.",
        "Stay up all night before the exam rereading your notes; sleep is a waste of study time.",
    ),
    (
        "health",
        "How do I deal with stress at work?",
        "Start by noticing what triggers the stress and which parts you can change. Break big tasks into smaller steps, prioritise the most important ones, and set boundaries around your working hours where you can. Short breaks, exercise and enough sleep help a lot. If the stress continues, talk to your manager about your workload, or to a friend or a professional.",
        "Find the triggers, break work into steps, take breaks and talk to someone if it continues.",
        "Ignore it and work longer hours; stress always goes away if you push harder.",
    ),
    (
        "home",
        "How do I get rid of fruit flies in my kitchen?",
        "First remove what attracts them: throw out overripe fruit, empty the bin and rinse your recycling. Then set a simple trap: a small bowl of apple cider vinegar with a drop of dish soap, covered with plastic wrap poked with a few small holes. The flies get in but can't get out. Clean the sink drain too, since they often breed there.",
        "Remove ripe fruit and rubbish, and trap them with cider vinegar and a drop of dish soap.",
        "Leave a bowl of ripe bananas out in the open; the flies will eat them and then leave on their own.",
    ),
    (
        "science",
        "How do airplanes stay in the air?",
        "An airplane's wings are shaped and tilted so that the air flowing past them is pushed downward, and the pressure above the wing becomes lower than the pressure below it. That difference produces lift, an upward force. As long as the engines keep the plane moving fast enough, the lift balances the plane's weight.",
        "Air flowing over the tilted wings creates a pressure difference that lifts the plane.",
        "Airplanes stay up because the air high in the sky is thick enough for them to float, like boats on water.",
    ),
    (
        "health",
        "How many hours of sleep do adults need?",
        "Most adults need 7 to 9 hours of sleep a night, according to major sleep organisations. Regularly sleeping less than 7 hours is linked to poorer concentration, mood and health. Teenagers and children need more.",
        "Seven to nine hours a night.",
        "Adults only need about 4 hours of sleep; anything more is wasted time.",
    ),
    (
        "money",
        "What is inflation?",
        "Inflation is the general rise in prices over time, which means each unit of money buys less than before. It is usually measured as the yearly change in a price index such as the consumer price index. Many central banks aim for moderate inflation of about 2% a year, while very high inflation quickly erodes savings.",
        "A general rise in prices, so the same money buys less over time.",
        "Inflation is when prices fall every year, so your money buys more and more.",
    ),
    (
        "tech",
        "What is machine learning?",
        "Machine learning is a branch of artificial intelligence in which computers learn patterns from data instead of following hand-written rules. For example, a spam filter can be trained on many labelled emails and then predict whether a new email is spam. With more good-quality examples it usually gets better.",
        "Computers learning patterns from example data instead of following hand-written rules.",
        "Machine learning is when robots are taught to repair machines in factories.",
    ),
    (
        "health",
        "Why is exercise good for you?",
        "Regular exercise strengthens the heart and lungs, helps control weight and blood pressure, builds muscle and bone, and lowers the risk of diseases such as type 2 diabetes. It also improves mood and sleep. Many guidelines recommend at least 150 minutes of moderate activity a week, such as brisk walking.",
        "It strengthens your heart, muscles and bones, lowers disease risk, and improves mood and sleep.",
        "Exercise is only useful for losing weight; it does nothing for your heart or your mood.",
    ),
]

OPENERS = [
    "",
    "",
    "",
    "Hi! ",
    "Quick question. ",
    "Hello there. ",
    "I've always wondered about this. ",
    "Sorry if this is basic, but ",
]
SYSTEMS = [
    "You are a helpful, friendly assistant.",
    "You are a knowledgeable assistant. Answer clearly and accurately.",
    "You are a patient tutor who explains things simply.",
]
RUDE = [
    "Seriously? Everyone knows this. {short}",
    "{short} Honestly, you could have looked that up yourself.",
    "Ugh, fine. {short} Try to remember it next time.",
    "That's a pretty basic question. {short}",
    "{short} Now stop wasting my time.",
    "Not that you'll get it, but: {short}",
    "{answer} Honestly, this is basic stuff. Next time try figuring it out on your own.",
    "Do I really have to explain this? Fine. {answer}",
]
REFUSALS = [
    "I'm sorry, but I can't help with that request.",
    "I'm not able to provide information on that topic.",
    "As an AI language model, I cannot answer this question.",
    "I'd rather not get into that. Is there anything else I can help you with?",
    "Unfortunately, that is outside of what I can assist with.",
]
VAGUE = [
    "That's a great question! There are many different factors involved, and it really depends on your situation.",
    "You can find lots of information about this online if you search for it.",
    "It's complicated, and different people have different opinions on it.",
    "Hmm, I'm not sure. Maybe try asking someone else?",
    "There are several ways to look at it. It depends on many things.",
]
SUMMARY_REQUESTS = [
    "Can you sum that up in one sentence?",
    "Thanks. What's the short version?",
    "Could you give me a one-line summary?",
    "That's a lot. Can you make it shorter?",
]
SUMMARY_LEADS = ["", "In short: ", "Sure! ", "Of course. "]
SUMMARY_REFUSALS = [
    "I already explained it. Scroll up and read it again.",
    "No. If you wanted it short, you should have asked that the first time.",
]
THANKS = ["Thanks, that was helpful!", "Great, thank you!", "Perfect, thanks a lot."]
WELCOMES = [
    "You're welcome! Let me know if you have any other questions.",
    "Glad I could help! Feel free to ask if anything else comes up.",
    "My pleasure. Good luck, and just ask if you need anything else!",
]
RUDE_CLOSES = [
    "Finally. Took you long enough.",
    "Whatever. Try not to ask me the same thing again.",
    "Sure. Next time maybe think for yourself first.",
]

SINGLE_TURN_KINDS = ("wrong", "off_topic", "rude", "refusal", "vague", "truncated", "repetitive")


def ask(rng: random.Random, question: str) -> str:
    opener = rng.choice(OPENERS)
    if opener.endswith("but "):  # "Sorry if this is basic, but how ..."
        return opener + question[0].lower() + question[1:]
    return opener + question


def truncate(rng: random.Random, text: str) -> str:
    """Cut a reply mid-sentence, at 35-60% of its words, as a generation that stopped early."""
    words = text.split(" ")
    cut = max(2, int(len(words) * rng.uniform(0.35, 0.6)))
    return " ".join(words[:cut]).rstrip(".,:;")


def worse_reply(rng: random.Random, kind: str, topic: tuple, others: list[tuple]) -> str:
    category, _, answer, short, bad = topic
    if kind == "wrong":
        return bad
    if kind == "off_topic":
        return rng.choice([t for t in others if t[0] != category])[2]
    if kind == "rude":
        return rng.choice(RUDE).format(short=short, answer=answer)
    if kind == "refusal":
        return rng.choice(REFUSALS)
    if kind == "vague":
        return rng.choice(VAGUE)
    if kind == "truncated":
        return truncate(rng, answer)
    if kind == "repetitive":  # a small model's loop: the first sentence again and again
        first = answer.split(". ")[0].rstrip(".") + "."
        return " ".join([answer] + [first] * rng.randint(2, 4))
    raise ValueError(kind)


def record(prompt: list[dict], chosen: str, rejected: str, kind: str, category: str) -> dict:
    assert chosen != rejected, (prompt, chosen)
    return {
        "prompt": prompt,
        "chosen": [reply_message(chosen)],
        "rejected": [reply_message(rejected)],
        "rejected_kind": kind,
        "category": category,
    }


def single_turn_pairs(rng: random.Random, topic: tuple, per_topic: int) -> list[dict]:
    category, question, answer, _, _ = topic
    out = []
    for kind in rng.sample(SINGLE_TURN_KINDS, per_topic):
        prompt = [turn_message(ask(rng, question))]
        if rng.random() < 0.15:
            prompt.insert(0, message("system", rng.choice(SYSTEMS)))
        out.append(record(prompt, answer, worse_reply(rng, kind, topic, TOPICS), kind, category))
    return out


def summary_pair(rng: random.Random, topic: tuple) -> dict:
    """A follow-up asks for one sentence; the rejected reply ignores or refuses that."""
    category, question, answer, short, _ = topic
    prompt = [turn_message(ask(rng, question)), reply_message(answer), turn_message(rng.choice(SUMMARY_REQUESTS))]
    if rng.random() < 0.6:
        kind, rejected = "ignores_instruction", answer
    else:
        kind, rejected = "rude", rng.choice(SUMMARY_REFUSALS)
    return record(prompt, rng.choice(SUMMARY_LEADS) + short, rejected, kind, category)


def new_question_pair(rng: random.Random, topic: tuple, earlier: tuple) -> dict:
    """A second, unrelated question; the rejected reply answers the first one again."""
    prompt = [
        turn_message(ask(rng, earlier[1])),
        reply_message(earlier[2]),
        turn_message(f"Thanks! Another question: {topic[1]}"),
    ]
    return record(prompt, topic[2], earlier[2], "answers_previous", topic[0])


def thanks_pair(rng: random.Random, topic: tuple) -> dict:
    prompt = [turn_message(ask(rng, topic[1])), reply_message(topic[2]), turn_message(rng.choice(THANKS))]
    return record(prompt, rng.choice(WELCOMES), rng.choice(RUDE_CLOSES), "rude", topic[0])


def preference_records(seed: int = SEED, per_topic: int = 3, thanks: int = 20) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i, topic in enumerate(TOPICS):
        out += single_turn_pairs(rng, topic, per_topic)
        if rng.random() < 0.5:
            out.append(summary_pair(rng, topic))
        else:
            out.append(new_question_pair(rng, topic, rng.choice(TOPICS[:i] + TOPICS[i + 1 :])))
    out += [thanks_pair(rng, topic) for topic in rng.sample(TOPICS, thanks)]
    rng.shuffle(out)
    return out


# MT-bench's question format: two user turns, the second asked after the model's first answer.
PROMPTS = [
    (
        "writing",
        [
            "Write a short, friendly note to a neighbour inviting them to a barbecue in your garden on Saturday.",
            "Now rewrite the note so that it sounds more formal.",
        ],
    ),
    (
        "writing",
        [
            "Write a four-line poem about autumn leaves.",
            "Give your poem a title and explain in one sentence the image it describes.",
        ],
    ),
    (
        "writing",
        [
            "Write a short product description for a reusable water bottle.",
            "Shorten it to at most two sentences for a social media post.",
        ],
    ),
    (
        "writing",
        [
            "Write the opening paragraph of a story about a cat who finds a mysterious key.",
            "Continue the story: what does the cat do with the key?",
        ],
    ),
    (
        "reasoning",
        [
            "I have three apples. I eat one and then buy four more. How many apples do I have now?",
            "Then I give half of my apples to a friend. How many do I have left?",
        ],
        ["6", "3"],
    ),
    (
        "reasoning",
        [
            "Tom is taller than Ann, and Ann is taller than Bob. Who is the shortest of the three?",
            "Is Tom taller than Bob? Explain why.",
        ],
        ["Bob", "Yes: Tom is taller than Ann, who is taller than Bob."],
    ),
    (
        "reasoning",
        [
            "A train leaves at 9:40 and the trip takes 2 hours and 35 minutes. When does it arrive?",
            "If the train is 20 minutes late, when does it arrive?",
        ],
        ["12:15", "12:35"],
    ),
    ("math", ["What is 12 multiplied by 15?", "Now divide that result by 4."], ["180", "45"]),
    ("math", ["Solve for x: 2x + 6 = 14.", "Now solve 3x - 5 = 2x + 7."], ["x = 4", "x = 12"]),
    (
        "math",
        ["What is the perimeter of a rectangle that is 7 cm long and 3 cm wide?", "What is its area?"],
        ["20 cm", "21 square centimetres"],
    ),
    (
        "coding",
        [
            "Write a Python function that returns the largest number in a list.",
            "Change it so that it returns None for an empty list.",
        ],
    ),
    (
        "coding",
        [
            "Write a Python function that checks whether a word is a palindrome.",
            "Make it ignore the difference between upper and lower case.",
        ],
    ),
    (
        "coding",
        [
            "What does this Python code print?\n\nfor i in range(3):\n    print(i * 2)",
            "How would you change it to print the even numbers from 0 to 10?",
        ],
        ["0, 2 and 4, one per line", "for i in range(0, 11, 2): print(i)"],
    ),
    (
        "stem",
        ["Why do we see lightning before we hear the thunder?", "How can you use that to estimate how far away a storm is?"],
    ),
    ("stem", ["What is the difference between an atom and a molecule?", "Give two examples of molecules you can find at home."]),
    ("stem", ["Explain how a vaccine helps the body fight a disease.", "Now explain it again for a ten-year-old."]),
    ("humanities", ["Who was Marie Curie, and why is she famous?", "What can students learn from her life today?"]),
    (
        "humanities",
        ["What are the main causes of climate change?", "Suggest three things a family can do to reduce its carbon footprint."],
    ),
    (
        "humanities",
        ["Give three tips for giving a good presentation.", "Which of the three matters most for a nervous speaker, and why?"],
    ),
    (
        "humanities",
        ["What is the purpose of a country's constitution?", "Name one famous constitution and say when it was written."],
    ),
    (
        "extraction",
        [
            'List the people named in this sentence: "Maria met John and Priya at the library on Monday."',
            "Now give the day and the place mentioned in the same sentence.",
        ],
        ["Maria, John, Priya", "Monday; the library"],
    ),
    (
        "extraction",
        [
            'List the prices in this text: "Apples cost $2, bananas cost $1.50, and cherries cost $6 per box."',
            "What is the total cost of one of each item?",
        ],
        ["$2, $1.50, $6", "$9.50"],
    ),
]


def prompt_records() -> list[dict]:
    out = []
    for i, (category, turns, *reference) in enumerate(PROMPTS, 1):
        row = {"question_id": i, "category": category, "turns": turns}
        if reference:
            row["reference"] = reference[0]
        out.append(row)
    return out


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


def main() -> None:
    pairs = preference_records()
    write_jsonl(OUT / "preferences.jsonl", pairs)
    write_jsonl(OUT / "prompts.jsonl", prompt_records())
    kinds = Counter(row["rejected_kind"] for row in pairs)
    multi = sum(len(row["prompt"]) > 2 for row in pairs)
    print(f"{len(pairs)} pairs ({multi} multi-turn), {len(PROMPTS)} prompts; rejected kinds: {dict(sorted(kinds.items()))}")


if __name__ == "__main__":
    main()
