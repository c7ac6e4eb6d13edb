// The built-in text: original prose in short paragraphs on everyday topics, with numbers,
// punctuation, quotes and contractions so a byte-level tokenizer sees a realistic mix.
#include "calib/builtin_text.h"

namespace ar {

namespace {
constexpr std::string_view kText = R"TEXT(The morning train left the station at seven minutes past six, carrying farmers, students and a few sleepy office workers toward the city. Most of them had made the same journey hundreds of times. They knew which carriage stopped nearest the exit, which seats caught the sun in winter, and which conductor would let a late passenger buy a ticket on board without a fuss.

A small bakery stood on the corner opposite the platform. Its owner, a patient woman named Clara, had been baking bread there for twenty-three years. She rose at four o'clock every day, lit the old oven, and shaped the loaves by hand. "Machines are quicker," she liked to say, "but they don't know when the dough is tired." Her regular customers believed her, and the queue outside her door was often longer than the one at the ticket office.

Rivers shape the land slowly. Over thousands of years, water carves valleys, moves stones and builds wide plains of fertile soil where it finally slows down. People have always settled near rivers because they offer water for drinking and farming, fish to eat, and an easy road for boats. Many of the oldest cities in the world grew up on the banks of a great river, and their fortunes rose and fell with its floods.

When you learn to play a musical instrument, progress rarely feels steady. For weeks nothing seems to change, and then one evening a difficult passage suddenly flows under your fingers. Teachers often say that practice works while you sleep. What they mean is that the brain keeps sorting and strengthening new skills long after the lesson has ended, so short daily sessions usually beat one long session a week.

The committee met on Tuesday to discuss the new library. After two hours of debate, its members agreed on three points: the building would open by the end of next year, it would stay open until nine in the evening, and at least a quarter of the budget would go to books for children. Not everyone was happy. One member argued that the money should repair the old swimming pool instead, but the vote was seven to two.

Computers store every number as a pattern of bits. A single bit can only be zero or one, yet eight of them together can count from 0 to 255, and sixty-four of them can count past eighteen quintillion. Real numbers are harder. A computer keeps only a limited number of digits, so values such as 0.1 cannot be stored exactly, and small rounding errors can add up during long calculations. Careful programmers know where those errors come from and how to keep them small.

In the mountains the weather changes quickly. A clear blue sky at noon can turn into a storm of hail and wind an hour later. Experienced hikers carry a warm jacket, a map, enough water and a little extra food, even on short walks. They also tell someone where they are going and when they expect to return. Most rescues, the guides explain, begin with a small mistake that nobody noticed at the time.

My grandfather kept a notebook in which he wrote down the price of everything he bought: a loaf of bread, a newspaper, a pair of shoes, a bus ticket. The first entries date from 1958. Reading it today is like watching a slow film of a changing town. Prices climb, shops appear and disappear, and new words such as "television" and "supermarket" creep into the lists. On the last page he wrote a single sentence: "Everything costs more, except a good conversation."

Good soup needs time more than skill. Start with onions cooked gently in a little oil until they are soft and sweet. Add carrots, celery and whatever vegetables are in season, then pour in water or stock and let it simmer for at least forty minutes. Taste it, add salt and pepper, and let it rest. Soup is almost always better on the second day, when the flavours have had a chance to mix.

Scientists who study birds have found that many species can recognise individual human faces. Crows, for example, remember people who have trapped or frightened them and will scold those people for years, even teaching their young to do the same. Pigeons can learn to sort pictures into groups, and parrots can use simple words with real meaning. The old insult "bird brain" is looking less and less fair.

Why do we enjoy stories so much? One answer is that stories let us practise life without its risks. Through a character we can feel fear, love, loss or triumph, and then close the book and make dinner. Stories also carry knowledge from one generation to the next: which berries are poisonous, whom to trust, how to behave when things go wrong. Long before writing existed, people remembered what mattered by turning it into a tale.

The market opens early on Saturdays. By eight o'clock the stalls are full of apples, pears, cheese, honey, flowers and warm pies. Children run between the tables while their parents compare prices and chat with neighbours. At one stall an old man sells nothing but keys; he can copy any key in two minutes and tells a joke while he works. Nobody is quite sure how he makes a living, but he has been there every week for as long as anyone can remember.

Learning a new language as an adult is humbling. You make mistakes that a small child would not make, you forget words you knew yesterday, and you laugh at jokes a second too late. Yet every conversation is a small victory. After a few months you notice that you are no longer translating in your head, and one day you realise, with surprise, that you have just dreamed in the new language.

The lighthouse on the northern cape was built in 1871 and still works today, although no keeper lives there any more. Its lamp turns automatically, flashing twice every fifteen seconds, and ships up to twenty miles away can see it on a clear night. Visitors can climb the 142 steps to the gallery at the top, where the wind is strong and the view stretches across the bay to the islands beyond.
)TEXT";
}  // namespace

std::string_view builtin_calibration_text() { return kText; }

}  // namespace ar
